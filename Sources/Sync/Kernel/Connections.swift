import IPVSModel
import InterfaceModel
import NetfilterModel

/// What a sync needs of the kernel's IPVS table.
///
/// The seam between the sync engine and the kernel: the IPVS handle is the real connection (fitted to this in the
/// KernelAccess module), and tests give the engine an in-memory table instead.
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
/// The rtnetlink handle is the real connection; tests give the engine in-memory links instead.
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
    /// The routes of type `local` in the `local` table, on the link with index `linkIndex` and made by
    /// `routeProtocol` (any link or protocol when `nil`).
    func localRoutes(linkIndex: Int32?, routeProtocol: RouteProtocol?) throws -> [LocalRoute]
    /// Adds and deletes local routes as one batch, going on after a refusal (adding one that is there is `EEXIST`,
    /// deleting one that is not `ESRCH`).
    /// - Returns: The changes the kernel refused.
    /// - Throws: When the batch's outcome is unknown (any part of it may have been applied).
    func apply(_ changes: [RouteChange]) throws -> [RouteChangeFailure]
}

/// What a sync needs of the kernel's nftables: ipvs-proxy's own tables, read and changed in transactions.
///
/// The libnftables handle is the real connection.
package protocol NFTablesConnection: Sendable {
    /// The table as the kernel lists it, or `nil` when there is none.
    func table(_ family: NFTFamily, named name: String) throws(NetfilterError) -> TableListing?
    /// Commits a transaction: all of it or nothing. With `dryRun`, the kernel checks it and commits nothing.
    func commit(_ transaction: NFTTransaction, dryRun: Bool) throws(NetfilterError)
    /// The ruleset's generation id, which every committed transaction (anyone's) moves.
    func generation() throws(NetfilterError) -> UInt32
    /// Every base chain of every table, read-only (to warn about other tables' policies).
    func baseChains() throws(NetfilterError) -> [ListedChain]
}

/// What a sync needs of the kernel's connection tracking table.
///
/// The ctnetlink handle is the real connection.
package protocol ConntrackConnection: Sendable {
    /// The entries of one family with an IP protocol in `protocols`.
    func entries(family: AddressFamily, protocols: Set<UInt8>) throws(NetfilterError) -> [ConntrackEntry]
    /// Deletes entries in one batch; an entry already gone counts as deleted.
    /// - Returns: The entries the kernel would not delete.
    func delete(_ entries: [ConntrackEntry]) throws(NetfilterError) -> [(ConntrackEntry, NetfilterError)]
}
