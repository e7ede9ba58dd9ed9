import IPVS
import Interfaces
import Netfilter
import NetfilterModel
import Sync

/// The kernel connections a command uses, opened in its network namespace.
struct KernelAccess: Sendable {
    let ipvs: IPVSHandle
    let interfaces: InterfaceHandle
    let nftables: NFTablesHandle
    let conntrack: ConntrackHandle
    let networkNamespacePath: String?

    /// Opens every connection, and checks that the kernel has nftables before anything else happens.
    init(namespace: NamespaceOptions) throws {
        let path = namespace.networkNamespacePath
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

    func syncer(state: StateOptions, netfilter: NetfilterSettings = NetfilterSettings()) -> Syncer {
        Syncer(
            ipvs: ipvs, interfaces: interfaces, nftables: nftables, conntrack: conntrack,
            store: OwnershipStore(directory: state.stateDir), linkName: state.linkName, netfilter: netfilter)
    }

    /// Warnings about other tables' forward chains whose policy drops: an accept in ipvs-proxy's table cannot
    /// override a drop in another, so replies that IPVS forwards die there. Read-only.
    func forwardPolicyWarnings() -> [String] {
        guard let chains = try? nftables.baseChains() else { return [] }
        return chains.filter { $0.hook == "forward" && $0.policy == "drop" && $0.table != ProxyTable.name }.map {
            "\($0) drops forwarded traffic that no rule there accepts: replies to Service traffic that IPVS "
                + "forwarded may die there; accept them in that table (see Docs/netfilter.md, e.g. "
                + "`ct state established,related accept`, and for Docker the DOCKER-USER chain)"
        }
    }
}

/// A kernel without nf_tables.
struct NFTablesMissing: Error, CustomStringConvertible {
    var underlying: NetfilterError

    var description: String {
        "nftables is not available in this kernel (\(underlying)): load the module nf_tables, with nft_chain_nat, "
            + "nft_masq, nft_ct, nft_fib and nft_reject; nothing was changed"
    }
}
