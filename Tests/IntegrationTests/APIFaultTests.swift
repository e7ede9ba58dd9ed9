import FakeAPIServer
import Foundation
import IPVS
import IPVSModel
import NIOHTTP1
import Synchronization
import Testing

/// A recorded (or hand-written) response's text, unedited.
private func text(_ path: String) -> String { try! String(contentsOfFile: path, encoding: .utf8) }
private func handWritten(_ name: String) -> String {
    text(packageRoot.appendingPathComponent("Tests/Fixtures/hand-written/\(name)").path)
}

/// The recorded Services list without some Services, and with `edit` applied to the rest: a response in the API
/// server's shape for states no recording holds.
private func servicesList(without removed: Set<String>, edit: (inout [String: Any]) -> Void = { _ in }) -> String {
    var list =
        try! JSONSerialization.jsonObject(with: Data(text(recorded("list-services.json")).utf8)) as! [String: Any]
    var items = (list["items"] as! [[String: Any]]).filter { !removed.contains(name(of: $0)) }
    for index in items.indices { edit(&items[index]) }
    list["items"] = items
    return String(decoding: try! JSONSerialization.data(withJSONObject: list), as: UTF8.self)
}

private func name(of item: [String: Any]) -> String { (item["metadata"] as? [String: Any])?["name"] as? String ?? "" }

/// The virtual servers a recorded Service has in the kernel: each port on each cluster IP, external IP and
/// load-balancer IP, and its node port on `nodeAddress`.
private func virtualServers(of service: String, nodeAddress: IPAddress) -> Set<VirtualServerKey> {
    let list =
        try! JSONSerialization.jsonObject(with: Data(text(recorded("list-services.json")).utf8)) as! [String: Any]
    let item = (list["items"] as! [[String: Any]]).first { name(of: $0) == service }!
    let spec = item["spec"] as! [String: Any]
    var addresses = (spec["clusterIPs"] as? [String] ?? []) + (spec["externalIPs"] as? [String] ?? [])
    let ingress = ((item["status"] as? [String: Any])?["loadBalancer"] as? [String: Any])?["ingress"]
    addresses += (ingress as? [[String: Any]] ?? []).compactMap { $0["ip"] as? String }
    var keys: Set<VirtualServerKey> = []
    for port in spec["ports"] as! [[String: Any]] {
        let transport: TransportProtocol = (port["protocol"] as? String) == "UDP" ? .udp : .tcp
        for address in addresses.compactMap(IPAddress.init) {
            keys.insert(.address(transport, address, port: UInt16(port["port"] as! Int)))
        }
        if let nodePort = port["nodePort"] as? Int {
            keys.insert(.address(transport, nodeAddress, port: UInt16(nodePort)))
        }
    }
    return keys
}

private let status500 =
    #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"etcdserver: request timed out","reason":"InternalError","code":500}"#
private let status504 =
    #"{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":"Timeout: request did not complete within requested timeout - context deadline exceeded","reason":"Timeout","details":{},"code":504}"#

/// A fake API server with the recorded cluster, whose answers a test turns faulty, kind by kind.
private final class ScriptedCluster: Sendable {
    /// How one kind of request is answered now.
    enum Answer: Sendable {
        case normal
        case fixed(FakeResponse)
        /// The first page of the chunked recording, whose next page then answers 500.
        case firstPageOnly
    }

    private struct Script {
        var services = ScriptedCluster.servicesBody(without: [])
        var answers: [String: Answer] = [:]
        /// Requests per kind since the script last changed.
        var counts: [String: Int] = [:]
    }
    /// Shared with the server's answering closure, made before `self` is.
    private final class Shared: Sendable {
        let script = Mutex(Script())
    }
    private let shared = Shared()
    let server: FakeAPIServer

    static let services = "/api/v1/services"
    static let slices = "/apis/discovery.k8s.io/v1/endpointslices"
    static let nodes = "/api/v1/nodes"
    static let serviceCIDRs = "/apis/networking.k8s.io/v1/servicecidrs"
    static func watch(_ path: String) -> String { path + " watch" }

    static func servicesBody(without removed: Set<String>) -> String {
        removed.isEmpty ? text(recorded("list-services.json")) : servicesList(without: removed)
    }

    init() throws {
        let shared = shared
        server = FakeAPIServer { uri, _ in
            let kind = FakeAPIServer.kind(of: uri)
            let (answer, body) = shared.script.withLock { script in
                script.counts[kind, default: 0] += 1
                return (script.answers[kind] ?? .normal, script.services)
            }
            switch answer {
            case .fixed(let response): return response
            case .firstPageOnly:
                return uri.contains("continue=")
                    ? .full(status: .internalServerError, body: status500)
                    : .full(status: .ok, body: text(recorded("list-services-chunked-page1.json")))
            case .normal:
                switch kind {
                case Self.services: return .full(status: .ok, body: body)
                case Self.slices: return .full(status: .ok, body: text(recorded("list-endpointslices.json")))
                case Self.nodes: return .full(status: .ok, body: handWritten("list-nodes.json"))
                case Self.serviceCIDRs: return .full(status: .ok, body: handWritten("list-servicecidrs.json"))
                default: return .hold(lines: [])
                }
            }
        }
        try server.start()
    }

    /// Answers these kinds so from now on (the others as normal), and drops the open watches so that the daemon asks
    /// again.
    func answer(_ answers: [String: Answer]) {
        shared.script.withLock {
            $0.answers = answers
            $0.counts = [:]
        }
        server.closeConnections()
    }

    /// The Services list from now on.
    func serve(servicesWithout removed: Set<String>) {
        let body = Self.servicesBody(without: removed)
        shared.script.withLock { $0.services = body }
    }

    /// Requests of a kind since the script last changed.
    func requests(_ kind: String) -> Int { shared.script.withLock { $0.counts[kind] ?? 0 } }

    /// A kubeconfig for this server, in `folder`.
    func kubeconfig(in folder: String) throws -> String {
        try write(
            """
            apiVersion: v1
            kind: Config
            clusters: [{name: fake, cluster: {server: "\(server.url)", certificate-authority: "\(FakeAPIServer.certificateAuthorityFile)"}}]
            users: [{name: test, user: {token: test-token}}]
            contexts: [{name: fake, context: {cluster: fake, user: test}}]
            current-context: fake
            """, to: folder, as: "kubeconfig")
    }
}

@Suite("Faults of the API server: nothing lost", .needsKernelIPVS, .timeLimit(.minutes(10)))
struct APIFaultTests {
    /// The daemon against an API server that fails in every way the issue names, one after the other: at no sample
    /// is a virtual server missing that should be there, and after each fault it reads again (the log says so);
    /// at the end it follows a change the recovered server makes. Node ports on the Node's primary address
    /// (`--nodeport-addresses primary`) stand for what a lost Node would remove.
    @Test func theDaemonLosesNothingWhileTheAPIServerFailsAndConvergesWhenItRecovers() throws {
        let namespace = try TestNamespace("api-faults")
        let ipvs = try namespace.ipvs()
        // The hand-written Node's InternalIP, and an address that is not primary.
        try namespace.ip("link", "add", "eth0", "type", "dummy")
        try namespace.ip("addr", "add", "192.168.60.10/24", "dev", "eth0")
        try namespace.ip("addr", "add", "192.168.61.10/24", "dev", "eth0")
        try namespace.ip("link", "set", "eth0", "up")
        let node = IPAddress("192.168.60.10")!
        let cluster = try ScriptedCluster()
        defer { cluster.server.stop() }
        let daemon = try Daemon(
            namespace: namespace, kubeconfig: try cluster.kubeconfig(in: try temporaryFolder("api")),
            arguments: ["--nodeport-addresses", "primary"])
        defer { daemon.stop() }

        let names = ["web", "checkout", "edge", "dns", "legacy-db", "api-dual", "api-v6", "kubernetes"]
        let required = names.reduce(into: Set<VirtualServerKey>()) {
            $0.formUnion(virtualServers(of: $1, nodeAddress: node))
        }
        let synced = try eventually(timeoutSeconds: 30) {
            Set(try ipvs.virtualServers().map(\.server.key)).isSuperset(of: required) ? true : nil
        }
        try #require(synced == true, "\(daemon.output)")
        #expect(required.contains(.address(.tcp, node, port: 32276)), "edge's node port, on the primary address only")
        let wanted = LockedBox(required)
        let sampler = VirtualServerSampler(ipvs) { wanted.value }

        /// Holds a fault until the daemon has asked `count` times what `kind` answers, then lets the server recover
        /// and (for a fault that makes the view stale) waits until the daemon says it reads again. Each wait allows
        /// two minutes: in a full parallel run of the emulated VM a phase has taken 32 s (the source backs off up to
        /// 30 s between requests); alone, 1 to 10 s.
        func fault(
            _ label: String, _ answers: [String: ScriptedCluster.Answer], until kind: String, asked count: Int,
            stale: Bool = true, sourceLocation: SourceLocation = #_sourceLocation
        ) {
            let started = Date()
            defer { print("API fault '\(label)': \(String(format: "%.1f", Date().timeIntervalSince(started))) s") }
            let recoveries = daemon.output.components(separatedBy: "the source reads again").count
            cluster.answer(answers)
            let held = eventually(timeoutSeconds: 120) { cluster.requests(kind) >= count ? true : nil }
            #expect(
                held == true, "\(label): the daemon asked \(cluster.requests(kind)) times",
                sourceLocation: sourceLocation)
            cluster.answer([:])
            guard stale else { return }
            let recovered = eventually(timeoutSeconds: 120) {
                daemon.output.components(separatedBy: "the source reads again").count > recoveries ? true : nil
            }
            #expect(recovered == true, "\(label): \(daemon.output.suffix(3000))", sourceLocation: sourceLocation)
        }

        let services = ScriptedCluster.services
        let servicesWatch = ScriptedCluster.watch(services)
        let expired = FakeResponse.stream(
            lines: text(recorded("watch-expired-410.json")).split(separator: "\n").map(String.init))
        fault(
            "500 on every request",
            [
                services: .fixed(.full(status: .internalServerError, body: status500)),
                servicesWatch: .fixed(.full(status: .internalServerError, body: status500)),
                ScriptedCluster.watch(ScriptedCluster.slices): .fixed(
                    .full(status: .internalServerError, body: status500)),
            ], until: servicesWatch, asked: 3)
        fault(
            "requests that time out",
            [servicesWatch: .fixed(.delayed(.seconds(2), .full(status: .gatewayTimeout, body: status504)))],
            until: servicesWatch, asked: 2)
        let checkout = text(recorded("watch-services.jsonl")).split(separator: "\n").first { $0.contains("MODIFIED") }!
        fault(
            "a watch closed mid-event",
            [servicesWatch: .fixed(.dropMidEvent(lines: [], partial: String(checkout.prefix(checkout.count / 2))))],
            until: servicesWatch, asked: 3)

        // 410 Gone, then a relist in which web does not decode and checkout is gone: web keeps its last good
        // version, checkout's virtual servers go.
        let undecodable = servicesList(without: ["checkout"]) { item in
            guard name(of: item) == "web", var spec = item["spec"] as? [String: Any] else { return }
            spec["ports"] = [["name": "http", "port": "eighty", "protocol": "TCP"]]
            item["spec"] = spec
        }
        wanted.value.subtract(virtualServers(of: "checkout", nodeAddress: node))
        cluster.serve(servicesWithout: ["checkout"])
        fault(
            "410 Gone, and a relist with an object that does not decode",
            [servicesWatch: .fixed(expired), services: .fixed(.full(status: .ok, body: undecodable))],
            until: services, asked: 1, stale: false)
        let relisted = try eventually(timeoutSeconds: 5) {
            try ipvs.virtualServers().contains {
                virtualServers(of: "checkout", nodeAddress: node).contains($0.server.key)
            } ? nil : true
        }
        #expect(relisted == true, "the relist was taken: checkout's virtual servers are gone")

        fault(
            "410 Gone, then {}", [servicesWatch: .fixed(expired), services: .fixed(.full(status: .ok, body: "{}"))],
            until: services, asked: 3)
        fault(
            "410 Gone, then a Status with 200",
            [
                servicesWatch: .fixed(expired),
                services: .fixed(.full(status: .ok, body: text(recorded("forbidden-403.json")))),
            ],
            until: services, asked: 3)
        fault(
            "410 Gone for the Node, then Node lists that fail",
            [
                ScriptedCluster.watch(ScriptedCluster.nodes): .fixed(expired),
                ScriptedCluster.nodes: .fixed(.full(status: .internalServerError, body: status500)),
            ], until: ScriptedCluster.nodes, asked: 3)
        fault(
            "410 Gone, then a list whose second page fails",
            [servicesWatch: .fixed(expired), services: .firstPageOnly], until: services, asked: 4)

        // The server recovered: a change it makes (edge deleted) arrives.
        wanted.value.subtract(virtualServers(of: "edge", nodeAddress: node))
        cluster.serve(servicesWithout: ["checkout", "edge"])
        cluster.answer([servicesWatch: .fixed(expired)])
        let converged = try eventually(timeoutSeconds: 10) {
            try ipvs.virtualServers().contains { virtualServers(of: "edge", nodeAddress: node).contains($0.server.key) }
                ? nil : true
        }
        #expect(converged == true, "\(daemon.output.suffix(3000))")
        let report = sampler.stop()
        #expect(report.misses.count == 0, "\(report)")
        #expect(report.longestGap <= 0.5, "\(report)")
    }
}
