import ArgumentParser
import IPVS
import IPVSModel
import KernelAccess
import Sync

struct CleanupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove everything ipvs-proxy owns, and nothing else.",
        discussion: """
            Deletes the virtual servers ipvs-proxy created, unbinds the service addresses it bound, deletes the \
            dummy link when nothing else is left on it, and deletes its nftables tables (ip ipvs-proxy and ip6 \
            ipvs-proxy, found by name). Virtual servers, addresses and nftables tables made by anything else stay.
            """
    )

    @OptionGroup var state: StateOptions
    @OptionGroup var namespace: NamespaceOptions

    @Flag(help: "Print what would be removed and change nothing.")
    var dryRun = false

    func run() throws {
        try Self.cleanUp(state: state, namespace: namespace, dryRun: dryRun)
    }

    /// Removes what ipvs-proxy owns (also `run --cleanup`, kube-proxy's flag) and says what went.
    static func cleanUp(state: StateOptions, namespace: NamespaceOptions, dryRun: Bool) throws {
        try requireNetworkAdministration()
        try reportingFailures {
            let lock = try StateLock(directory: state.stateDir)
            let syncer = try KernelAccess(networkNamespacePath: namespace.networkNamespacePath).syncer(
                stateDirectory: state.stateDir, linkName: state.linkName)
            let report = try syncer.cleanup(dryRun: dryRun)
            withExtendedLifetime(lock) {}
            let verb = dryRun ? "would be " : ""
            print(
                "virtual servers: \(report.deletedVirtualServers.count) \(verb)deleted\n"
                    + "addresses: \(report.unboundAddresses.count) \(verb)unbound\n"
                    + "link \(state.linkName): \(report.deletedLink ? "\(verb)deleted" : "kept")\n"
                    + "nftables tables: \(report.deletedTables.count) \(verb)deleted")
            if dryRun {
                for key in report.deletedVirtualServers { print("  delete-virtual-server \(key)") }
                for address in report.unboundAddresses { print("  unbind \(address)") }
                for family in report.deletedTables { print("  delete table \(family) ipvs-proxy") }
            }
            let failures = report.failureDescriptions
            if !failures.isEmpty {
                for failure in failures { printError("kernel refused: \(failure)") }
                throw ExitStatus.failure
            }
        }
    }
}
