#include "kvclient/report.h"

#include <cstdio>
#include <sstream>

namespace kv::bench {
namespace {

struct Percentiles {
  double q;
  const char* json_name;
  const char* table_name;
};
constexpr Percentiles kPercentiles[] = {
    {50, "p50", "p50"}, {95, "p95", "p95"}, {99, "p99", "p99"}, {99.9, "p999", "p99.9"}};

std::string Num(double v, int decimals = 1) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", decimals, v);
  return buf;
}

// A JSON string literal: quotes, backslashes and control characters escaped.
std::string Quote(const std::string& s) {
  std::string out = "\"";
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof(buf), "\\u%04x", c);
      out += buf;
    } else {
      out += c;
    }
  }
  return out + '"';
}

std::string PhaseJson(const PhaseResult& phase) {
  std::ostringstream out;
  out << "\"throughput_ops\":" << Num(phase.throughput()) << ",\"ops\":" << phase.ops
      << ",\"errors\":" << phase.errors << ",\"seconds\":" << Num(phase.seconds, 3)
      << ",\"redirects\":" << phase.redirects << ",\"retries\":" << phase.retries
      << ",\"errors_by_kind\":{";
  const char* sep = "";
  for (const auto& [kind, n] : phase.errors_by_kind) {
    out << sep << Quote(kind) << ':' << n;
    sep = ",";
  }
  out << "},\"latency_us\":{";
  sep = "";
  for (const auto& [name, stats] : phase.by_op) {
    const Histogram& h = stats.latency_us;
    out << sep << Quote(name) << ":{\"count\":" << stats.ok << ",\"errors\":" << stats.errors;
    for (const auto& p : kPercentiles) out << ",\"" << p.json_name << "\":" << h.Percentile(p.q);
    out << ",\"max\":" << h.max() << ",\"mean\":" << Num(h.mean()) << "}";
    sep = ",";
  }
  out << "}";
  return out.str();
}

std::string PhaseTable(const PhaseResult& phase) {
  std::ostringstream out;
  char line[256];
  std::snprintf(line, sizeof(line), "%s: %llu ops in %.2f s = %.0f ops/s, %llu errors\n",
                phase.name.c_str(), static_cast<unsigned long long>(phase.ops), phase.seconds,
                phase.throughput(), static_cast<unsigned long long>(phase.errors));
  out << line;
  std::snprintf(line, sizeof(line), "  %-18s %10s %8s %9s %9s %9s %9s %9s   (latency in us)\n",
                "op", "count", "errors", kPercentiles[0].table_name, kPercentiles[1].table_name,
                kPercentiles[2].table_name, kPercentiles[3].table_name, "max");
  out << line;
  for (const auto& [name, stats] : phase.by_op) {
    const Histogram& h = stats.latency_us;
    std::snprintf(line, sizeof(line), "  %-18s %10llu %8llu", name.c_str(),
                  static_cast<unsigned long long>(stats.ok),
                  static_cast<unsigned long long>(stats.errors));
    out << line;
    for (const auto& p : kPercentiles) {
      std::snprintf(line, sizeof(line), " %9llu",
                    static_cast<unsigned long long>(h.Percentile(p.q)));
      out << line;
    }
    std::snprintf(line, sizeof(line), " %9llu\n", static_cast<unsigned long long>(h.max()));
    out << line;
  }
  out << "  errors:";
  if (phase.errors_by_kind.empty()) out << " none";
  for (const auto& [kind, n] : phase.errors_by_kind) out << ' ' << kind << '=' << n;
  if (phase.redirects > 0) out << " (" << phase.redirects << " requests redirected)";
  if (phase.retries > 0) out << " (" << phase.retries << " resent after a back-off)";
  out << '\n';
  return out.str();
}

}  // namespace

std::string FormatTable(const BenchConfig& config, const BenchResult& result) {
  std::ostringstream out;
  out << "kvbench: " << result.target << ", workload " << result.workload << ", "
      << config.records << " records of " << config.value_size << " B, " << config.connections
      << " connections x " << config.inflight << " in flight, seed " << config.seed;
  if (config.warmup.count() > 0) out << ", " << config.warmup.count() << " s warm-up not counted";
  out << '\n';
  if (result.load) out << PhaseTable(*result.load);
  if (result.run) out << PhaseTable(*result.run);
  return out.str();
}

std::string FormatJson(const BenchConfig& config, const BenchResult& result) {
  const PhaseResult* main = result.main_phase();
  std::ostringstream out;
  out << "{\"workload\":" << Quote(config.workload) << ",\"target\":" << Quote(result.target)
      << ",\"description\":" << Quote(result.workload)
      << ",\"phase\":" << Quote(main ? main->name : "none")
      << ",\"connections\":" << config.connections << ",\"inflight\":" << config.inflight
      << ",\"records\":" << config.records << ",\"value_size\":" << config.value_size
      << ",\"warmup_s\":" << config.warmup.count();
  if (main) out << ',' << PhaseJson(*main);
  if (result.load && result.run) out << ",\"load\":{" << PhaseJson(*result.load) << '}';
  out << '}';
  return out.str();
}

}  // namespace kv::bench
