import ArgumentParser
import IPVS
import IPVSModel
import Sync

struct CleanupCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "cleanup",
        abstract: "Remove everything ipvs-proxy owns, and nothing else.",
        discussion: """
            Deletes the virtual servers ipvs-proxy created, unbinds the service addresses it bound, and deletes the \
            dummy link when nothing else is left on it. Virtual servers and addresses made by anything else stay.
            """
    )

    @OptionGroup var state: StateOptions
    @OptionGroup var namespace: NamespaceOptions

    @Flag(help: "Print what would be removed and change nothing.")
    var dryRun = false

    func run() throws {
        try requireNetworkAdministration()
        try reportingFailures {
            let lock = try StateLock(directory: state.stateDir)
            let syncer = try Syncer(
                ipvs: IPVSHandle(networkNamespacePath: namespace.networkNamespacePath),
                interfaces: InterfaceHandle(networkNamespacePath: namespace.networkNamespacePath),
                store: OwnershipStore(directory: state.stateDir), linkName: state.linkName)
            let report = try syncer.cleanup(dryRun: dryRun)
            withExtendedLifetime(lock) {}
            let verb = dryRun ? "would be " : ""
            print(
                "virtual servers: \(report.deletedVirtualServers.count) \(verb)deleted\n"
                    + "addresses: \(report.unboundAddresses.count) \(verb)unbound\n"
                    + "link \(state.linkName): \(report.deletedLink ? "\(verb)deleted" : "kept")")
            if dryRun {
                for key in report.deletedVirtualServers { print("  delete-virtual-server \(key)") }
                for address in report.unboundAddresses { print("  unbind \(address)") }
            }
            let failures = report.failures.map(\.error.description) + report.addressFailures.map(\.error.description)
            if !failures.isEmpty {
                for failure in failures { printError("kernel refused: \(failure)") }
                throw ExitStatus.failure
            }
        }
    }
}
