import Foundation
import IPVS
import IPVSModel
import InterfaceModel
import Interfaces
import KernelAccess
import Sync
import Testing

/// Links and addresses read while others change them: the kernel flags a multi-part dump that its table changed
/// under (`NLM_F_DUMP_INTR`), and such a dump may skip entries; the handles read it again, so no read misses a
/// link or an address that was there all along.
@Suite("Dumps read while links and addresses change", .needsKernelIPVS, .timeLimit(.minutes(5)))
struct DumpTests {
    /// IPv4 and IPv6 addresses of one kind, `count` of each.
    private static func addresses(_ prefix4: String, _ prefix6: String, count: Int, on link: Int32)
        -> [InterfaceAddress]
    {
        (0..<count).flatMap { index in
            [
                InterfaceAddress(linkIndex: link, address: IPAddress("\(prefix4).\(index / 250).\(index % 250 + 1)")!),
                InterfaceAddress(
                    linkIndex: link, address: IPAddress("\(prefix6)::\(String(index + 1, radix: 16))")!),
            ]
        }
    }

    @Test func everyReadHoldsWhatWasThereAllAlong() throws {
        let namespace = try TestNamespace("dumps")
        let setup = try namespace.interfaces()
        let service = try setup.addDummyLink(named: "kube-ipvs0")
        let node = try setup.addDummyLink(named: "node0")
        // Enough links and addresses that a dump takes several datagrams. The kernel builds each one when the one
        // before it has been taken, and checks its table's generation only then; with 3,000 addresses the reader
        // is still busy with one datagram while later ones are built, and that is where others' changes fall.
        let fillers = try (0..<40).map { try setup.addDummyLink(named: "fill\($0)") }
        for index in [service, node] + fillers { try setup.setLinkUp(index: index) }
        let serviceAddresses = Self.addresses("10.96", "fd00:10:96", count: 1500, on: service)
        let nodeAddresses = [
            InterfaceAddress(linkIndex: node, address: IPAddress("192.168.1.10")!),
            InterfaceAddress(linkIndex: node, address: IPAddress("fd00:1::10")!),
        ]
        #expect(try setup.apply((serviceAddresses + nodeAddresses).map(AddressChange.bind)).isEmpty)
        let stableAddresses = Set(serviceAddresses + nodeAddresses)
        let stableLinks = Set(["lo", "kube-ipvs0", "node0"] + (0..<40).map { "fill\($0)" })

        // Others' changes: IPv6 addresses join a link's list at its head, so removing them moves every address
        // behind them, which is what makes a resumed dump skip one; a link comes and goes too.
        let churner = try namespace.interfaces()
        let churn = Self.addresses("10.98", "fd00:10:98", count: 10, on: service)
        let onDummyLink = Set((serviceAddresses + churn).map(\.address))
        let stop = LockedBox(false)
        let rounds = LockedBox(0)
        let churnFailure = LockedBox<String?>(nil)
        let churning = LockedBox(true)
        let finished = DispatchSemaphore(value: 0)
        Thread {
            let deadline = Date().addingTimeInterval(60)
            while rounds.value < 200, Date() < deadline, !stop.value {
                do {
                    _ = try churner.apply(churn.map(AddressChange.bind))
                    // Paced, so that most reads find a quiet moment: in the VM a dump of this size takes tens of
                    // milliseconds, and back-to-back changes would interrupt every attempt of every read.
                    Thread.sleep(forTimeInterval: 0.1)
                    _ = try churner.apply(churn.map(AddressChange.unbind))
                    if rounds.value % 5 == 0 {
                        try churner.deleteLink(index: try churner.addDummyLink(named: "churn0"))
                    }
                    Thread.sleep(forTimeInterval: 0.1)
                } catch {
                    churnFailure.value = "\(error)"
                    break
                }
                rounds.value += 1
            }
            churning.value = false
            finished.signal()
        }.start()

        let addressReader = try namespace.interfaces()
        let linkReader = try namespace.interfaces()
        let discoverer = try namespace.interfaces()
        var reads = 0
        var exhausted = 0
        var misses: [String] = []
        while reads < 150, churning.value {
            reads += 1
            do {
                let list = try addressReader.addresses()
                let addresses = Set(list)
                let missing = stableAddresses.subtracting(addresses)
                if !missing.isEmpty {
                    misses.append(
                        "addresses() missed \(missing.count): \(missing.map(\.description).sorted().prefix(3))")
                }
                // A dump resumed after addresses joined ahead of it repeats some: as wrong as skipping some.
                if list.count != addresses.count {
                    misses.append("addresses() repeated \(list.count - addresses.count)")
                }

                let links = Set(try linkReader.links().map(\.name))
                let missingLinks = stableLinks.subtracting(links)
                if !missingLinks.isEmpty { misses.append("links() missed \(missingLinks.sorted())") }

                // Without the dummy link, its addresses would pass for the node's.
                let discovered = try NodeAddresses.discover(discoverer, excludingLink: "kube-ipvs0")
                if !Set(nodeAddresses.map(\.address)).isSubset(of: Set(discovered.nodePortAddresses)) {
                    misses.append("discover missed a node address: \(discovered.nodePortAddresses)")
                }
                if !discovered.localAddresses.isDisjoint(with: onDummyLink) {
                    misses.append("discover took the dummy link's addresses for the node's")
                }
            } catch let error as KernelCallError where error.reason == .dumpInterrupted {
                // Interrupted on every attempt: an error, never a short list. Counted, not a miss.
                exhausted += 1
            }
        }
        stop.value = true
        #expect(finished.wait(timeout: .now() + 60) == .success, "the churn thread did not stop")
        #expect(churnFailure.value == nil, "\(churnFailure.value ?? "")")

        let interrupted = (
            addresses: addressReader.interruptedDumps, links: linkReader.interruptedDumps,
            discover: discoverer.interruptedDumps
        )
        print(
            "DumpTests: \(reads) rounds of reads against \(rounds.value) rounds of changes; dump reads the kernel "
                + "marked interrupted: addresses() \(interrupted.addresses), links() \(interrupted.links), "
                + "discover \(interrupted.discover); reads that were interrupted on every attempt: \(exhausted)")
        #expect(misses.isEmpty, "\(misses.count) wrong reads: \(misses.prefix(5))")
        #expect(exhausted < reads, "every read gave up")
        // Without a change falling inside some read, this test would have tested nothing. In the VM about half the
        // rounds of reads meet one.
        #expect(interrupted.addresses + interrupted.discover > 0)
    }
}
