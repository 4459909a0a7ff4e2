// SIGINT/SIGTERM handling shared by every server main. BlockStopSignals()
// runs first in main, so threads started before the handler exists (spdlog,
// ZeroMQ, storage flushers) inherit the blocked mask; InstallStopHandler()
// installs the handler, ignores SIGPIPE and unblocks, so the signal always
// reaches the main thread's handler. Call each once, from the main thread.
#pragma once

namespace kv {

void BlockStopSignals();
void InstallStopHandler(void (*handler)(int));

}  // namespace kv
