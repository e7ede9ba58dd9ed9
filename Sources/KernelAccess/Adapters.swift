import IPVS
import IPVSModel
import InterfaceModel
import Interfaces
import Netfilter
import NetfilterModel
import Sync

// The kernel handles, as the sync engine's parts need them.

extension IPVSHandle: IPVSTableConnection {}
extension InterfaceHandle: InterfaceConnection {}
extension ConntrackHandle: ConntrackConnection {}

extension NFTablesHandle: NFTablesConnection {
    package func table(_ family: NFTFamily, named name: String) throws(NetfilterError) -> TableListing? {
        let operation = "list the nftables table \(family) \(name)"
        let tables = try run("list tables \(family)\n", operation: operation, json: true)
        guard
            try Self.reading(
                operation,
                { () throws(TableListing.Malformed) in
                    try TableListing.tableNames(json: tables, family: family).contains(name)
                })
        else { return nil }
        let json = try run("list table \(family) \(name)\n", operation: operation, json: true)
        return try Self.reading(operation) { () throws(TableListing.Malformed) in
            try TableListing(json: json, family: family, table: name)
        }
    }

    package func commit(_ transaction: NFTTransaction, dryRun: Bool) throws(NetfilterError) {
        _ = try run(
            transaction.text, operation: dryRun ? "check an nftables transaction" : "apply an nftables transaction",
            dryRun: dryRun)
    }

    package func baseChains() throws(NetfilterError) -> [ListedChain] {
        let json = try run("list chains\n", operation: "list nftables chains", json: true)
        return try Self.reading("list nftables chains") { () throws(TableListing.Malformed) in
            try ListedChain.baseChains(json: json)
        }
    }

    /// Reads a listing; one libnftables did not write as expected is a malformed reply.
    private static func reading<Result>(
        _ operation: String, _ body: () throws(TableListing.Malformed) -> Result
    ) throws(NetfilterError) -> Result {
        do {
            return try body()
        } catch {
            throw NetfilterError(operation: operation, reason: .malformedReply)
        }
    }
}
