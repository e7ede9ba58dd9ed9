import ArgumentParser
import IPVS
import IPVSModel
import Netfilter
import NetfilterModel
import Sync

struct Show: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print the kernel's IPVS table.",
        discussion: """
            The text format follows `ipvsadm -Ln`. The JSON format gives, per virtual server, its protocol, \
            address and port (or fwmark), scheduler, flags, persistence timeout and real servers; its schema is \
            in Docs/show-json.md.
            """
    )

    @OptionGroup var namespace: NamespaceOptions

    @Option(
        help: ArgumentHelp(
            "Where ipvs-proxy records what it owns; its virtual servers are shown with their Service port.",
            valueName: "folder"))
    var stateDir = "/run/ipvs-proxy"

    @Option(name: [.short, .long], help: "Output format: text or json.")
    var output: OutputFormat = .text

    @Flag(help: "Print ipvs-proxy's nftables tables (as `nft list table` does) instead of the IPVS table.")
    var nftables = false

    func run() throws {
        try requireNetworkAdministration()
        if nftables { return try showTables() }
        try reportingFailures {
            let handle = try IPVSHandle(networkNamespacePath: namespace.networkNamespacePath)
            let owned = try OwnershipStore(directory: stateDir).load()
            let report = TableReport(
                info: try handle.info(), virtualServers: try handle.table(),
                owners: owned.virtualServers.mapValues(\.description))
            writeStandardOutput(output == .json ? report.json() : report.text())
        }
    }
}

extension Show {
    /// Prints `ip ipvs-proxy` and `ip6 ipvs-proxy` as nft lists them, in text or JSON.
    private func showTables() throws {
        try reportingFailures {
            let handle = try NFTablesHandle(networkNamespacePath: namespace.networkNamespacePath)
            for family in NFTFamily.allCases where try handle.table(family, named: ProxyTable.name) != nil {
                let listing = try handle.run(
                    "list table \(family) \(ProxyTable.name)\n", operation: "list table \(family) \(ProxyTable.name)",
                    json: output == .json)
                writeStandardOutput(Array(listing.utf8))
            }
        }
    }
}

struct Version: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print ipvs-proxy's version, and the kernel's IPVS version when it can be read.",
        discussion: "Exits 0 wherever it runs: without IPVS or the rights to ask, it says why on the IPVS line."
    )

    @OptionGroup var namespace: NamespaceOptions

    func run() throws {
        print("ipvs-proxy \(ProxyVersion.current)")
        do {
            let info = try IPVSHandle(networkNamespacePath: namespace.networkNamespacePath).info()
            print("IPVS \(info.version) (connection table size \(info.connectionTableSize))")
        } catch {
            print("IPVS: unknown (\(error))")
        }
    }
}
