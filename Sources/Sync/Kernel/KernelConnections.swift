import IPVS
import IPVSModel

/// What a sync needs of the kernel's IPVS table.
///
/// The seam between the sync engine and the kernel: ``IPVSHandle`` is the real connection, and tests give the
/// engine an in-memory table instead.
package protocol IPVSTableConnection: Sendable {
    /// Every virtual server with its real servers. A dump, not a snapshot: it may repeat an entry.
    func table() throws -> [VirtualServerState]
    /// The real servers of one virtual server (none when it does not exist).
    func realServers(of key: VirtualServerKey) throws -> [RealServerState]
    /// Applies operations as one batch, in order, going on after a refusal.
    /// - Returns: The operations the kernel refused.
    /// - Throws: When the batch's outcome is unknown (any part of it may have been applied).
    func apply(_ operations: [TableOperation]) throws -> [BatchFailure]
}

/// What a sync needs of the kernel's links and addresses.
///
/// ``InterfaceHandle`` is the real connection; tests give the engine in-memory links instead.
package protocol InterfaceConnection: Sendable {
    /// Every link of the namespace.
    func links() throws -> [NetworkLink]
    /// The link with this name, if any.
    func link(named name: String) throws -> NetworkLink?
    /// Every address of every link.
    func addresses() throws -> [InterfaceAddress]
    /// Creates a dummy link and returns its index.
    func addDummyLink(named name: String) throws -> Int32
    /// Sets a link administratively up.
    func setLinkUp(index: Int32) throws
    /// Deletes a link.
    func deleteLink(index: Int32) throws
    /// Applies address changes as one batch.
    /// - Returns: The changes the kernel refused.
    func apply(_ changes: [AddressChange]) throws -> [AddressChangeFailure]
}

extension IPVSHandle: IPVSTableConnection {}
extension InterfaceHandle: InterfaceConnection {}
