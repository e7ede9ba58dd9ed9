import InterfaceModel
import KernelShim
import SystemPackage
import Testing

@testable import Interfaces

/// Links and addresses read through the shim's transport from a fake kernel on a socket pair: a dump the kernel
/// marks interrupted (`NLM_F_DUMP_INTR`) is read again from the start, and a dump that ends with an error throws;
/// neither is ever taken as a shorter list.
@Suite("Interrupted and failed dumps", .timeLimit(.minutes(2)))
struct InterruptedDumpTests {
    typealias M = RouteMessages

    private static let node: [UInt8] = [192, 168, 1, 10]
    private static let service: [UInt8] = [10, 96, 0, 1]
    private static let podNetwork: [UInt8] = [10, 244, 0, 1]
    private static let nodeIPv6: [UInt8] = [0xFD, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10]

    /// A clean address dump: the node's address, a service address on link 3, an IPv6 node address.
    private static func cleanAddresses(_ sequence: UInt32) -> [[UInt8]] {
        [
            M.address(node, link: 2, sequence: sequence) + M.address(service, link: 3, sequence: sequence),
            M.address(nodeIPv6, link: 2, sequence: sequence) + M.done(sequence: sequence),
        ]
    }

    private static let cleanAddressSet: Set<InterfaceAddress> = [
        InterfaceAddress(linkIndex: 2, address: IPAddress("192.168.1.10")!, prefixLength: 32),
        InterfaceAddress(linkIndex: 3, address: IPAddress("10.96.0.1")!, prefixLength: 32),
        InterfaceAddress(linkIndex: 2, address: IPAddress("fd00::10")!, prefixLength: 128),
    ]

    @Test func anInterruptedAddressDumpIsReadAgainFromScratch() throws {
        var addresses: [InterfaceAddress] = []
        var interruptions = 0
        let requests = try withFakeKernel(answer: { index, request in
            let sequence = request.sequence
            guard index == 0 else { return Self.cleanAddresses(sequence) }
            // The first part is sent before the change, the second after: the kernel flags it, and it has
            // skipped the service address (link 3) and repeats the node's.
            return [
                M.address(Self.node, link: 2, sequence: sequence)
                    + M.address(Self.podNetwork, link: 4, sequence: sequence),
                M.address(Self.node, link: 2, sequence: sequence, flags: M.multipart | M.interrupted)
                    + M.done(sequence: sequence, flags: M.multipart | M.interrupted),
            ]
        }) { interfaces in
            addresses = try interfaces.addresses()
            interruptions = interfaces.interruptedDumps
        }
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.type == M.getAddress && $0.flags & M.dump == M.dump })
        #expect(requests[0].sequence != requests[1].sequence)
        // Exactly the second dump: nothing of the first (the pod network address, the repeat) is kept.
        #expect(addresses.count == 3)
        #expect(Set(addresses) == Self.cleanAddressSet)
        #expect(interruptions == 1)
    }

    @Test func aFlagOnTheDoneMessageAloneIsAnInterruption() throws {
        var addresses: [InterfaceAddress] = []
        let requests = try withFakeKernel(answer: { index, request in
            let sequence = request.sequence
            guard index == 0 else { return Self.cleanAddresses(sequence) }
            return [
                M.address(Self.node, link: 2, sequence: sequence),
                M.done(sequence: sequence, flags: M.multipart | M.interrupted),
            ]
        }) { interfaces in
            addresses = try interfaces.addresses()
        }
        #expect(requests.count == 2)
        #expect(Set(addresses) == Self.cleanAddressSet)
    }

    @Test func aFlagOnAnotherExchangesLeftoverIsNotOurs() throws {
        var addresses: [InterfaceAddress] = []
        let requests = try withFakeKernel(answer: { _, request in
            let sequence = request.sequence
            // An answer to an abandoned exchange arrives first, flagged; it is not this dump's.
            let leftover = M.address(Self.podNetwork, link: 4, sequence: sequence &- 1, flags: M.interrupted)
            var answer = Self.cleanAddresses(sequence)
            answer[0] = leftover + answer[0]
            return answer
        }) { interfaces in
            addresses = try interfaces.addresses()
        }
        #expect(requests.count == 1)
        #expect(Set(addresses) == Self.cleanAddressSet)
    }

    @Test func aDumpThatEndsWithAnErrorThrows() throws {
        let requests = try withFakeKernel(answer: { _, request in
            let sequence = request.sequence
            // Two entries went out before the dump failed: they are not the node's addresses.
            return [
                M.address(Self.node, link: 2, sequence: sequence)
                    + M.address(Self.service, link: 3, sequence: sequence),
                M.done(sequence: sequence, error: -Errno.ioError.rawValue),
            ]
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) { try interfaces.addresses() }
            #expect(error.errno == .ioError)
            #expect(error.operation == "list addresses")
            #expect(interfaces.interruptedDumps == 0)
        }
        // A failed dump is an error, not an interruption: it is not read again.
        #expect(requests.count == 1)
    }

    @Test func aDumpInterruptedEveryTimeThrowsAfterBoundedAttempts() throws {
        let requests = try withFakeKernel(answer: { _, request in
            let sequence = request.sequence
            return [
                M.address(Self.node, link: 2, sequence: sequence),
                M.address(Self.service, link: 3, sequence: sequence, flags: M.multipart | M.interrupted)
                    + M.done(sequence: sequence),
            ]
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) { try interfaces.addresses() }
            #expect(error.reason == .dumpInterrupted)
            #expect(error.description.contains("kept changing"))
            #expect(interfaces.interruptedDumps == DumpRereader.attempts)
        }
        #expect(requests.count == DumpRereader.attempts)
    }

    // MARK: - Links

    private static func cleanLinks(_ sequence: UInt32) -> [[UInt8]] {
        [
            M.link(index: 1, name: "lo", sequence: sequence) + M.link(index: 2, name: "eth0", sequence: sequence),
            M.link(index: 3, name: "kube-ipvs0", kind: "dummy", sequence: sequence) + M.done(sequence: sequence),
        ]
    }

    @Test func anInterruptedLinkDumpIsReadAgainFromScratch() throws {
        var links: [NetworkLink] = []
        let requests = try withFakeKernel(answer: { index, request in
            let sequence = request.sequence
            guard index == 0 else { return Self.cleanLinks(sequence) }
            // The dummy link was skipped when a pod's veth went away mid-dump.
            return [
                M.link(index: 1, name: "lo", sequence: sequence) + M.link(index: 2, name: "eth0", sequence: sequence),
                M.link(index: 9, name: "veth9", kind: "veth", sequence: sequence, flags: M.multipart | M.interrupted)
                    + M.done(sequence: sequence),
            ]
        }) { interfaces in
            links = try interfaces.links()
            #expect(interfaces.interruptedDumps == 1)
        }
        #expect(requests.count == 2)
        #expect(requests.allSatisfy { $0.type == M.getLink && $0.flags & M.dump == M.dump })
        #expect(links.map(\.name) == ["lo", "eth0", "kube-ipvs0"])
        #expect(links.last?.kind == "dummy")
    }

    @Test func aLinkDumpThatEndsWithAnErrorThrows() throws {
        let requests = try withFakeKernel(answer: { _, request in
            let sequence = request.sequence
            return [
                M.link(index: 1, name: "lo", sequence: sequence),
                M.done(sequence: sequence, error: -Errno.noBufferSpace.rawValue),
            ]
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) { try interfaces.links() }
            #expect(error.errno == .noBufferSpace)
            // The dummy link's lookup reads links too: a failed dump is not "no such link".
            #expect(throws: KernelCallError.self) { try interfaces.link(named: "kube-ipvs0") }
        }
        #expect(requests.count == 2)
    }

    @Test func aLinkDumpInterruptedEveryTimeThrowsAfterBoundedAttempts() throws {
        let requests = try withFakeKernel(answer: { _, request in
            let sequence = request.sequence
            return [
                M.link(index: 1, name: "lo", sequence: sequence, flags: M.multipart | M.interrupted)
                    + M.done(sequence: sequence, flags: M.multipart | M.interrupted)
            ]
        }) { interfaces in
            let error = try #require(throws: KernelCallError.self) { try interfaces.links() }
            #expect(error.reason == .dumpInterrupted)
        }
        #expect(requests.count == DumpRereader.attempts)
    }

    // MARK: - The dummy link's index

    @Test func aNewDummyLinksIndexIsAskedForByNameNotByDump() throws {
        var index: Int32 = 0
        let requests = try withFakeKernel(answer: { _, request in
            switch request.type {
            case M.newLink:
                return [M.acknowledgement(of: request)]
            case M.getLink where request.flags & M.dump == 0:
                return [
                    M.link(index: 7, name: "kube-ipvs0", kind: "dummy", sequence: request.sequence, flags: 0)
                        + M.acknowledgement(of: request)
                ]
            default:
                return [M.acknowledgement(of: request, error: -Errno.notSupported.rawValue)]
            }
        }) { interfaces in
            index = try interfaces.addDummyLink(named: "kube-ipvs0")
        }
        #expect(index == 7)
        #expect(requests.map(\.type) == [M.newLink, M.getLink])
    }
}
