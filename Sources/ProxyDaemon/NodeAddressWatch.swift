import InterfaceModel
import Interfaces
import Logging
import NIOPosix
import ServiceLifecycle
import Sync

/// Follows the kernel's announcements of address changes and tells the sync loop when a node address came or
/// went, so that node ports follow within the loop's pacing instead of at the next full resync. Changes on the
/// dummy link (the proxy's own binds) are not the node's: they are ignored, or every sync would cause another.
package struct NodeAddressWatch: ServiceLifecycle.Service {
    let monitor: AddressMonitor
    /// The part that binds service addresses to the dummy link, which says where that link is.
    let addresses: ServiceAddressPart
    let logger: Logger
    let onChange: @Sendable () -> Void

    package init(
        monitor: AddressMonitor, addresses: ServiceAddressPart, logger: Logger,
        onChange: @escaping @Sendable () -> Void
    ) {
        self.monitor = monitor
        self.addresses = addresses
        self.logger = logger
        self.onChange = onChange
    }

    package func run() async throws {
        // A thread of its own: waiting on the socket must not hold up syncs on the shared pool (one thread on a
        // one-CPU node).
        let threadPool = NIOThreadPool(numberOfThreads: 1)
        threadPool.start()
        defer { threadPool.shutdownGracefully { _ in } }
        await cancelWhenGracefulShutdown {
            while !Task.isCancelled {
                do {
                    // A short wait lets cancellation through.
                    let announcement = try await threadPool.runIfActive { [monitor] in
                        try monitor.wait(timeout: .milliseconds(500))
                    }
                    guard let announcement else { continue }
                    // Looked up each time: the dummy link may be made (or made again) after the watch starts.
                    let dummy = Result { try addresses.linkIndex() }
                    if case .failure(let error) = dummy {
                        logger.warning(
                            "could not read links; taking an address change for the node's",
                            metadata: ["error": "\(error)"])
                    }
                    if Self.concernsTheNode(announcement, dummyLink: dummy) { onChange() }
                } catch {
                    logger.warning("could not follow address changes", metadata: ["error": "\(error)"])
                    try? await Task.sleep(for: .seconds(1))
                }
            }
        }
    }

    /// Whether an announcement may be about the node's addresses, given the lookup of the dummy link's index.
    /// When links could not be read (they kept changing through every read), the change may be anyone's: dropping
    /// it would leave node ports behind until the next full resync, while a sync for nothing costs little.
    static func concernsTheNode(_ announcement: AddressAnnouncement, dummyLink lookup: Result<Int32?, any Error>)
        -> Bool
    {
        guard case .success(let index) = lookup else { return true }
        return concernsTheNode(announcement, dummyLinkIndex: index)
    }

    /// Whether an announcement may be about an address of a link other than the dummy link.
    static func concernsTheNode(_ announcement: AddressAnnouncement, dummyLinkIndex: Int32?) -> Bool {
        guard case .changed(let links) = announcement else { return true }
        return links.contains { $0 != dummyLinkIndex }
    }
}
