import IPVS
import Interfaces
import Netfilter
import NetfilterModel
import Sync

/// The node's kernel connections, opened in its network namespace, and the sync engine over them.
package struct KernelAccess: Sendable {
    package let ipvs: IPVSHandle
    let interfaces: InterfaceHandle
    let nftables: NFTablesHandle
    let conntrack: ConntrackHandle
    package let networkNamespacePath: String?

    /// Opens every connection in the network namespace at `path` (the caller's when `nil`), and checks that the
    /// kernel has nftables before anything else happens.
    package init(networkNamespacePath path: String?) throws {
        networkNamespacePath = path
        ipvs = try IPVSHandle(networkNamespacePath: path)
        interfaces = try InterfaceHandle(networkNamespacePath: path)
        (nftables, conntrack) = try Self.openNetfilter(path)
    }

    private static func openNetfilter(_ path: String?) throws -> (NFTablesHandle, ConntrackHandle) {
        do {
            let nftables = try NFTablesHandle(networkNamespacePath: path)
            _ = try nftables.generation()
            return (nftables, try ConntrackHandle(networkNamespacePath: path))
        } catch  where error.isNFTablesMissing {
            throw NFTablesMissing(underlying: error)
        }
    }

    /// The sync engine over these connections, keeping its state (the ownership record) in `stateDirectory`.
    package func syncer(
        stateDirectory: String, linkName: String, netfilter: NetfilterSettings = NetfilterSettings()
    ) -> Syncer {
        Syncer(
            ipvs: ipvs, interfaces: interfaces, nftables: nftables, conntrack: conntrack,
            store: OwnershipStore(directory: stateDirectory), linkName: linkName, netfilter: netfilter)
    }

    /// Warnings about other tables' forward chains whose policy drops: an accept in ipvs-proxy's table cannot
    /// override a drop in another, so replies that IPVS forwards die there. Read-only.
    package func forwardPolicyWarnings() -> [String] {
        guard let chains = try? nftables.baseChains() else { return [] }
        return chains.filter { $0.hook == "forward" && $0.policy == "drop" && $0.table != ProxyTable.name }.map {
            "\($0) drops forwarded traffic that no rule there accepts: replies to Service traffic that IPVS "
                + "forwarded may die there; accept them in that table (see Docs/netfilter.md, e.g. "
                + "`ct state established,related accept`, and for Docker the DOCKER-USER chain)"
        }
    }
}

/// A kernel without nf_tables.
package struct NFTablesMissing: Error, CustomStringConvertible {
    package var underlying: NetfilterError

    package var description: String {
        "nftables is not available in this kernel (\(underlying)): load the module nf_tables, with nft_chain_nat, "
            + "nft_masq, nft_ct, nft_fib and nft_reject; nothing was changed"
    }
}
