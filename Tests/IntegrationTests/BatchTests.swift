import IPVSModel
import SystemPackage
import Testing

@Suite("Batches against the kernel", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct BatchTests {
    /// 1,000 virtual servers with 10 real servers each, as one batch (11,000 operations).
    @Test func thousandVirtualServersWithTenRealServersEach() throws {
        let namespace = try TestNamespace("batch")
        let ipvs = try namespace.ipvs()
        var expected: [(VirtualServer, [RealServer])] = []
        var operations: [TableOperation] = []
        for service in 0..<1000 {
            let key = VirtualServerKey.address(
                .tcp, IPAddress(ipv4: 0x0A60_0000 + UInt32(service)), port: UInt16(80 + service % 3))
            let server = VirtualServer(key, persistenceTimeout: service % 5 == 0 ? 600 : 0)
            operations.append(.addVirtualServer(server))
            var reals: [RealServer] = []
            for endpoint in 0..<10 {
                let real = RealServer(
                    IPAddress(ipv4: 0x0AF4_0000 + UInt32(service) << 4 + UInt32(endpoint)), port: 8080,
                    weight: Int32(endpoint % 3 + 1))
                operations.append(.addRealServer(real, to: key))
                reals.append(real)
            }
            expected.append((server, reals))
        }

        let failures = try ipvs.apply(operations)
        #expect(failures.isEmpty)

        // The kernel's own dump, read by ipvsadm, is exactly the state that was sent. A multi-part dump
        // counts its resume position over the services of every namespace, so changes that parallel tests
        // make elsewhere can shift it: read again until it is whole.
        let expectedRules = ipvsadmRules(expected)
        let rules = try eventually(timeoutSeconds: 10) {
            let rules = try namespace.ipvsadmRules()
            return rules.count == expectedRules.count ? rules : nil
        }
        #expect(rules == expectedRules)
        // And our dump reads back the same.
        let table = try #require(
            try eventually(timeoutSeconds: 10) {
                let table = try ipvs.table()
                return table.count == 1000 ? table : nil
            })
        #expect(table.count == 1000)
        let read = Dictionary(uniqueKeysWithValues: table.map { ($0.server.key, $0) })
        for (server, reals) in expected {
            let state = try #require(read[server.key])
            #expect(state.server.hasSameSettings(as: server))
            #expect(Set(state.realServers.map(\.server)) == Set(reals))
        }
    }

    @Test func failuresAreReportedWithTheirIndexAndErrno() throws {
        let namespace = try TestNamespace("batch-fail")
        let ipvs = try namespace.ipvs()
        let web = VirtualServerKey.address(.tcp, IPAddress("10.96.0.10")!, port: 80)
        let missing = VirtualServerKey.address(.tcp, IPAddress("10.96.0.11")!, port: 80)
        let real = RealServer(IPAddress("10.244.0.1")!, port: 80)
        let operations: [TableOperation] = [
            .addVirtualServer(VirtualServer(web)),  // 0: fine
            .addVirtualServer(VirtualServer(web)),  // 1: EEXIST
            .addRealServer(real, to: web),  // 2: fine
            .deleteRealServer(RealServerKey(IPAddress("10.244.0.2")!, port: 80), from: web),  // 3: ENOENT
            .editVirtualServer(VirtualServer(missing)),  // 4: ESRCH
            .addVirtualServer(VirtualServer(missing, scheduler: .weightedRandomTwosChoice)),  // 5: ENOENT on 6.1
            .editRealServer(RealServer(real.address, port: 80, weight: 4), in: web),  // 6: fine
        ]
        let failures = try ipvs.apply(operations)
        #expect(failures.map(\.index) == [1, 3, 4, 5])
        #expect(
            failures.map(\.error.errno) == [
                .fileExists, .noSuchFileOrDirectory, .noSuchProcess, .noSuchFileOrDirectory,
            ])
        #expect(failures[0].operation == operations[1])
        #expect(failures[3].error.description.contains("scheduler 'twos' is not available"))
        // Operations after a failure were still applied.
        #expect(try ipvs.realServers(of: web).map(\.server.weight) == [4])
    }

    @Test func anEmptyBatchCompletes() throws {
        #expect(try TestNamespace("batch-empty").ipvs().apply([]).isEmpty)
    }

    /// Far more failures than one receive buffer holds at once: each chunk's answers are collected
    /// as it is sent, so none is lost.
    @Test func manyFailuresAreAllReported() throws {
        let ipvs = try TestNamespace("batch-many").ipvs()
        let operations = (0..<20_000).map { index in
            TableOperation.deleteVirtualServer(.address(.udp, IPAddress(ipv4: 0x0A00_0000 + UInt32(index)), port: 53))
        }
        let failures = try ipvs.apply(operations)
        #expect(failures.count == 20_000)
        #expect(failures.allSatisfy { $0.error.errno == .noSuchProcess })
        #expect(failures.map(\.index) == Array(0..<20_000))
    }

    /// Refusals that overflow the receive buffer make the batch fail with ENOBUFS, and leave the socket
    /// usable: the kernel drops every answer to a socket that overflowed until its queue is emptied, so a
    /// handle that did not empty it first would wait forever for the next request's acknowledgement.
    @Test func aBatchThatOverflowsTheSocketFailsAndTheHandleStillWorks() throws {
        let ipvs = try TestNamespace("batch-overflow").ipvs()
        let deletes = (0..<2000).map { index in
            TableOperation.deleteVirtualServer(.address(.udp, IPAddress(ipv4: 0x0A00_0000 + UInt32(index)), port: 53))
        }
        try ipvs.setReceiveBufferSize(1)
        #expect {
            try ipvs.apply(deletes)
        } throws: { error in
            (error as? IPVSError)?.errno == .noBufferSpace
        }
        try ipvs.setReceiveBufferSize(8 << 20)

        // The next batch gets its answers: a refusal as well as the final acknowledgement.
        let key = VirtualServerKey.address(.tcp, IPAddress("10.1.0.1")!, port: 80)
        let missing = VirtualServerKey.address(.udp, IPAddress("10.9.9.9")!, port: 53)
        let failures = try ipvs.apply([
            .addVirtualServer(VirtualServer(key, scheduler: .roundRobin)), .deleteVirtualServer(missing),
        ])
        #expect(failures.map(\.index) == [1])
        #expect(try ipvs.virtualServers().map(\.server.key) == [key])
    }
}
