import ServiceLifecycle
import UnixSignals

/// Forces a full resync on SIGHUP.
struct SignalService: ServiceLifecycle.Service {
    let loop: SyncLoop<ContinuousClock>

    func run() async throws {
        await cancelWhenGracefulShutdown {
            for await _ in await UnixSignalsSequence(trapping: .sighup) {
                loop.requestFullSync()
            }
        }
    }
}
