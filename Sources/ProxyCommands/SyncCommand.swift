import ArgumentParser
import HostSystem
import IPVS
import IPVSModel
import KernelAccess
import KubernetesModel
import ProxyDaemon
import ProxyRules
import Sync
import Translation

struct SyncCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sync",
        abstract: "Make the kernel's IPVS table match Kubernetes manifests, once.",
        discussion: """
            Reads Services, EndpointSlices and Endpoints from YAML or JSON files and folders (what `kubectl get \
            svc,endpointslices,endpoints -A -o yaml` prints works as is), turns them into virtual and real \
            servers as kube-proxy's IPVS mode does, and applies only the difference from the kernel's table, \
            in one batch. Service addresses are bound to the dummy link. Around IPVS it programs the netfilter \
            half of kube-proxy's IPVS mode in its own nftables tables, ip and ip6 ipvs-proxy (masquerade, \
            hairpin, filtering of service addresses, loadBalancerSourceRanges), in one transaction, and deletes \
            stale UDP and SCTP flows from conntrack.

            Only virtual servers that ipvs-proxy created are changed or deleted; it records them under \
            --state-dir. A virtual server made by something else at a key a Service wants is reported and left \
            alone (exit status 3). A real server that is no longer wanted is deleted at once when it has no \
            connections; otherwise its weight becomes 0 and a later sync deletes it once drained.

            Nothing is applied when any object is invalid (exit status 2).
            """
    )

    @Option(
        name: [.customShort("f"), .long],
        help: ArgumentHelp("A manifest file or folder (repeatable: -f a.yaml -f dir/).", valueName: "path"))
    var manifests: [String] = []

    @OptionGroup var node: NodeOptions
    @OptionGroup var netfilter: NetfilterOptions
    @OptionGroup var state: StateOptions
    @OptionGroup var namespace: NamespaceOptions

    @Flag(help: "Print the planned kernel operations and change nothing.")
    var dryRun = false

    @Flag(help: "Allow an input without Services to delete everything ipvs-proxy owns.")
    var allowEmpty = false

    @Option(name: [.short, .long], help: "Output format of the summary: text or json.")
    var output: OutputFormat = .text

    @Flag(help: "Print how long each phase took, to standard error.")
    var timings = false

    func validate() throws {
        if manifests.isEmpty { throw ValidationError("Missing manifests: give at least one -f FILE or -f FOLDER.") }
    }

    /// What a sync needs of the kernel before it plans: its lock, the syncer, the node's addresses, and what
    /// the kernel holds.
    private struct KernelView: Sendable {
        var lock: StateLock
        var kernel: KernelAccess
        var syncer: Syncer
        var nodeAddresses: NodeAddresses
        var observation: KernelObservation?
        var reading: Duration
    }

    private func openKernel(observe: Bool) throws -> KernelView {
        let start = ContinuousClock.now
        let lock = try StateLock(directory: state.stateDir)
        let kernel = try KernelAccess(networkNamespacePath: namespace.networkNamespacePath)
        let syncer = kernel.syncer(
            stateDirectory: state.stateDir, linkName: state.linkName, netfilter: netfilter.settings)
        let addresses =
            try syncer.part(ServiceAddressPart.self)?.nodeAddresses()
            ?? NodeAddresses(nodePortAddresses: [], localAddresses: [])
        let observation = observe ? try syncer.observe() : nil
        return KernelView(
            lock: lock, kernel: kernel, syncer: syncer, nodeAddresses: addresses, observation: observation,
            reading: ContinuousClock.now - start)
    }

    func run() throws {
        let clock = ContinuousClock()
        let started = clock.now
        var phases: [(phase: String, duration: Duration)] = []
        // What the kernel holds does not depend on the input: read it while the input is parsed.
        let command = self
        let kernel =
            Privileges.hasNetworkAdministration() == true
            ? Concurrently { try command.openKernel(observe: true) } : nil
        let manifestSet: ManifestSet
        do {
            manifestSet = try ManifestLoader.load(paths: manifests)
            phases.append(("load manifests", clock.now - started))
        } catch {
            writeStandardError(error.description + "\n")
            printError("nothing was applied: \(error.problems.count) problem(s) in the input")
            throw ExitStatus.badInput
        }
        for warning in manifestSet.warnings { printError("warning: \(warning)") }

        var report: SyncReport?
        try requireNetworkAdministration()
        try reportingFailures {
            let view = try kernel?.result() ?? openKernel(observe: false)
            phases.append(("read table (while loading)", view.reading))
            let syncer = view.syncer
            let addresses = view.nodeAddresses
            let ownNode = manifestSet.node(named: node.resolvedNodeName)
            var context = NodeContext(
                nodeName: node.resolvedNodeName,
                nodeAddresses: node.nodePortAddresses.select(from: addresses.nodePortAddresses, node: ownNode),
                localAddresses: addresses.localAddresses, scheduler: node.validatedScheduler)
            context.follow(ownNode)
            let desired: DesiredState
            do {
                let translating = clock.now
                desired = try Translator.translate(manifestSet, node: context)
                phases.append(("translate", clock.now - translating))
            } catch let error as ManifestErrors {
                writeStandardError(error.description + "\n")
                printError("nothing was applied: \(error.problems.count) problem(s) in the input")
                throw ExitStatus.badInput
            }
            for warning in desired.warnings + netfilter.warnings + view.kernel.forwardPolicyWarnings() {
                printError("warning: \(warning)")
            }
            if !dryRun {
                let settings = KernelSettings(networkNamespacePath: namespace.networkNamespacePath)
                for (name, value) in KernelSetup.ipvsSysctls { try settings.set(name, to: value) }
            }
            do {
                report = try syncer.sync(
                    desired, options: SyncOptions(dryRun: dryRun, allowEmpty: allowEmpty), observed: view.observation)
            } catch let error as SyncError {
                printError("\(error); nothing was applied (pass --allow-empty to do that)")
                throw ExitStatus.badInput
            }
            withExtendedLifetime(view.lock) {}
        }
        guard let report else { return }
        if timings {
            let alongside = [("nftables commit (alongside the IPVS batch)", report.nftables.commitTime)]
            for (phase, duration) in phases + report.timings + alongside + [("total", clock.now - started)] {
                writeStandardError("timing: \(phase): \(duration)\n")
            }
            // Files the fast decoder left to JSONDecoder or Yams (far slower; bad input always goes there).
            writeStandardError("timing: files decoded by the full decoder: \(FastDecodingFallbacks.total)\n")
        }
        print(output == .json ? SyncSummary(report).json() : SyncSummary(report).text(), terminator: "")
        if report.hasFailures {
            for failure in report.failureDescriptions.prefix(40) { printError("kernel refused: \(failure)") }
            throw ExitStatus.failure
        }
        if !report.table.blocked.isEmpty { throw ExitStatus.foreignConflict }
    }
}

/// The summary `sync` prints.
struct SyncSummary {
    let report: SyncReport

    init(_ report: SyncReport) { self.report = report }

    private func count(_ kind: TableOperation.Kind) -> Int { report.table.counts[kind] ?? 0 }

    func text() -> String {
        var lines: [String] = []
        if report.dryRun {
            lines.append("dry run: \(report.table.operations.count) IPVS operations planned, nothing changed")
            lines += report.table.operations.map { "  \($0)" }
            lines += report.addresses.bound.map { "  bind \($0)" } + report.addresses.unbound.map { "  unbind \($0)" }
            for transaction in report.nftables.transactions {
                lines.append("planned nftables transaction (checked by the kernel, not committed):")
                lines += transaction.split(separator: "\n").map { "  \($0)" }
            }
        }
        let verb = report.dryRun ? "would be " : ""
        lines.append(
            "virtual servers: \(count(.addVirtualServer)) \(verb)added, \(count(.editVirtualServer)) \(verb)edited, "
                + "\(count(.deleteVirtualServer)) \(verb)deleted")
        lines.append(
            "real servers: \(count(.addRealServer)) \(verb)added, \(count(.editRealServer)) \(verb)edited, "
                + "\(count(.deleteRealServer)) \(verb)deleted, \(report.table.draining.count) draining")
        let addresses = report.addresses.counts
        lines.append("addresses: \(addresses.bound) \(verb)bound, \(addresses.unbound) \(verb)unbound")
        var nftables =
            "nftables: \(report.nftables.elementsAdded) set elements \(verb)added, "
            + "\(report.nftables.elementsDeleted) \(verb)deleted"
        if !report.nftables.replaced.isEmpty {
            nftables +=
                "; table \(report.nftables.replaced.map(\.rawValue).joined(separator: ", ")) ipvs-proxy \(verb)written whole"
        }
        lines.append(nftables)
        if !report.dryRun { lines.append("conntrack: \(report.flows.deleted) stale UDP/SCTP flows deleted") }
        for (key, service) in report.table.blocked.sorted(by: { $0.key < $1.key }) {
            lines.append(
                "blocked: \(key) (for \(service)) is held by a virtual server ipvs-proxy does not own; left alone")
        }
        if report.hasFailures {
            lines.append("failed: \(report.failureDescriptions.count) operations refused by the kernel")
        }
        return lines.joined(separator: "\n") + "\n"
    }

    func json() -> String {
        var writer = JSONWriter()
        writer.beginObject()
        writer.field("dryRun", report.dryRun)
        writer.beginObject(key: "virtualServers")
        writer.field("added", count(.addVirtualServer))
        writer.field("edited", count(.editVirtualServer))
        writer.field("deleted", count(.deleteVirtualServer))
        writer.endObject()
        writer.beginObject(key: "realServers")
        writer.field("added", count(.addRealServer))
        writer.field("edited", count(.editRealServer))
        writer.field("deleted", count(.deleteRealServer))
        writer.field("draining", report.table.draining.count)
        writer.endObject()
        let addresses = report.addresses.counts
        writer.beginObject(key: "addresses")
        writer.field("bound", addresses.bound)
        writer.field("unbound", addresses.unbound)
        writer.endObject()
        writer.beginObject(key: "nftables")
        writer.field("elementsAdded", report.nftables.elementsAdded)
        writer.field("elementsDeleted", report.nftables.elementsDeleted)
        writer.field("tablesWritten", strings: report.nftables.replaced.map(\.rawValue))
        writer.field("transactions", report.dryRun ? 0 : report.nftables.transactions.count)
        writer.endObject()
        writer.field("staleFlowsDeleted", report.flows.deleted)
        // IPVS operations and address changes sent (the nftables half counts its set elements on its own).
        let writes = report.table.operations.count + report.addresses.bound.count + report.addresses.unbound.count
        writer.field("writeOperations", report.dryRun ? 0 : writes)
        writer.beginArray(key: "blocked")
        for (key, service) in report.table.blocked.sorted(by: { $0.key < $1.key }) {
            writer.beginObject()
            writer.field("virtualServer", key.description)
            writer.field("service", service.description)
            writer.endObject()
        }
        writer.endArray()
        writer.field("failures", strings: report.failureDescriptions)
        if report.dryRun {
            writer.field(
                "plannedOperations",
                strings: report.table.operations.map(\.description) + report.addresses.bound.map { "bind \($0)" }
                    + report.addresses.unbound.map { "unbind \($0)" })
            writer.field("plannedNFTablesTransactions", strings: report.nftables.transactions)
        }
        writer.endObject()
        return writer.output + "\n"
    }
}
