import CTestSupport
import Foundation
import Synchronization
import TestSupport
import Testing

@testable import KubernetesModel

/// A minimal valid Service, as YAML, for cases to break.
private func service(name: String = "web", spec: String = "  ports:\n  - port: 80\n", extra: String = "") -> String {
    """
    apiVersion: v1
    kind: Service
    metadata:
      name: \(name)
      namespace: shop
    spec:
      clusterIP: 10.96.0.10
    \(spec)\(extra)
    """
}

private func slice(addressType: String = "IPv4", address: String = "10.244.1.5", port: String = "8080") -> String {
    """
    apiVersion: discovery.k8s.io/v1
    kind: EndpointSlice
    metadata:
      name: web-abc
      namespace: shop
      labels:
        kubernetes.io/service-name: web
    addressType: \(addressType)
    endpoints:
    - addresses: ["\(address)"]
    ports:
    - name: http
      port: \(port)
    """
}

/// Writes `content` to a fresh file and loads it.
private func load(_ content: String, named name: String = "input.yaml") throws(ManifestErrors) -> ManifestSet {
    let folder = try! makeTemporaryFolder("manifests")
    defer { removeTemporaryFolder(folder) }
    let file = (folder as NSString).appendingPathComponent(name)
    try! Data(content.utf8).write(to: URL(fileURLWithPath: file))
    return try ManifestLoader.load(paths: [file])
}

struct BadInput: CustomTestStringConvertible, Sendable {
    var name: String
    var content: String
    var file = "input.yaml"
    /// What the one-line message must say, after the file's path.
    var expected: String
    var testDescription: String { name }
}

private let badInputs: [BadInput] = [
    BadInput(name: "broken YAML", content: "kind: Service\nmetadata: [unclosed\n", expected: "invalid YAML"),
    BadInput(name: "broken JSON", content: "{\"kind\": \"Service\",", file: "input.json", expected: "invalid JSON"),
    BadInput(
        name: "port is a string", content: service(spec: "  ports:\n  - port: eighty\n"),
        expected: "document 1 (Service shop/web): spec.ports[0].port: expected a number"),
    BadInput(
        name: "port missing", content: service(spec: "  ports:\n  - name: http\n"),
        expected: "document 1 (Service shop/web): spec.ports[0].port: missing: this field is required"),
    BadInput(
        name: "port 0", content: service(spec: "  ports:\n  - port: 0\n"),
        expected: "(Service shop/web): spec.ports[0].port: must be a port number 1-65535, not 0"),
    BadInput(
        name: "port above 65535", content: service(spec: "  ports:\n  - port: 65536\n"),
        expected: "spec.ports[0].port: must be a port number 1-65535, not 65536"),
    BadInput(
        name: "nodePort above 65535",
        content: service(spec: "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: 70000\n"),
        expected: "spec.ports[0].nodePort: must be a port number 1-65535, not 70000"),
    BadInput(
        name: "unknown protocol", content: service(spec: "  ports:\n  - port: 80\n    protocol: ICMP\n"),
        expected: "spec.ports[0].protocol: 'ICMP' is not one of TCP, UDP, SCTP"),
    BadInput(
        name: "invalid cluster IP", content: service().replacingOccurrences(of: "10.96.0.10", with: "10.96.0.300"),
        expected: "spec.clusterIP: '10.96.0.300' is not a valid IPv4 or IPv6 address"),
    BadInput(
        name: "invalid IPv6 external IP", content: service(extra: "  externalIPs: [\"fd00::zz\"]\n"),
        expected: "spec.externalIPs[0]: 'fd00::zz' is not a valid IPv4 or IPv6 address"),
    BadInput(
        name: "timeoutSeconds 0",
        content: service(
            extra: "  sessionAffinity: ClientIP\n  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 0\n"),
        expected: "spec.sessionAffinityConfig.clientIP.timeoutSeconds: must be 1-86400 seconds, not 0"),
    BadInput(
        name: "timeoutSeconds above a day",
        content: service(extra: "  sessionAffinityConfig:\n    clientIP:\n      timeoutSeconds: 86401\n"),
        expected: "timeoutSeconds: must be 1-86400 seconds, not 86401"),
    BadInput(
        name: "unknown service type", content: service(extra: "  type: Ingress\n"),
        expected: "spec.type: 'Ingress' is not one of ClusterIP, NodePort, LoadBalancer, ExternalName"),
    BadInput(
        name: "the same Service twice", content: service() + "\n---\n" + service(),
        expected: "document 2 (Service shop/web): defined twice; also at"),
    BadInput(
        name: "slice address of the wrong family", content: slice(addressType: "IPv6"),
        expected:
            "(EndpointSlice shop/web-abc): endpoints[0].addresses[0]: 10.244.1.5 is an IPv4 address, but addressType is IPv6"
    ),
    BadInput(
        name: "a load-balancer source range that is no network",
        content: service(extra: "  type: LoadBalancer\n  loadBalancerSourceRanges: [203.0.113.0/24, 10.0.0.0/33]\n"),
        expected:
            "(Service shop/web): spec.loadBalancerSourceRanges[1]: '10.0.0.0/33' is not a network in CIDR notation (10.0.0.0/8)"
    ),
    BadInput(
        name: "unknown addressType", content: slice(addressType: "IPv5"),
        expected: "addressType: 'IPv5' is not one of IPv4, IPv6, FQDN"),
    BadInput(
        name: "invalid endpoint address", content: slice(address: "10.244.1"),
        expected: "endpoints[0].addresses[0]: '10.244.1' is not a valid IPv4 or IPv6 address"),
    BadInput(
        name: "slice port 0", content: slice(port: "0"), expected: "ports[0].port: must be a port number 1-65535, not 0"
    ),
    BadInput(
        name: "missing name", content: service(name: "\"\""),
        expected: "metadata.name: missing: every object needs a name"),
    BadInput(
        name: "missing kind", content: "apiVersion: v1\nmetadata:\n  name: x\n",
        expected: "document 1 (x): kind: missing: every object needs a kind"),
    BadInput(
        name: "a document that is not an object", content: "just some words\n",
        expected: "document 1: expected a Kubernetes object (a mapping)"),
    BadInput(
        name: "ports is not a list", content: service(spec: "  ports: 80\n"), expected: "spec.ports: expected a list"),
    BadInput(
        name: "unsupported slice apiVersion",
        content: slice().replacingOccurrences(of: "discovery.k8s.io/v1", with: "discovery.k8s.io/v1beta1"),
        expected: "apiVersion: unsupported apiVersion 'discovery.k8s.io/v1beta1' for EndpointSlice"),
    BadInput(
        name: "bad item in a List",
        content: """
            {"apiVersion": "v1", "kind": "List", "items": [
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "a", "namespace": "shop"}, "spec": {"ports": [{"port": 80}]}},
              {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "b", "namespace": "shop"}, "spec": {"ports": [{"port": "x"}]}}
            ]}
            """, file: "input.json",
        expected: "document 1, item 2 (Service shop/b): spec.ports[0].port: expected a number"),
    BadInput(
        name: "a binary file", content: "\u{7F}ELF\u{02}\u{01}\u{01}\u{00}\u{00}\u{00}", file: "input.yaml",
        expected: "not a text file (binary data)"),
    BadInput(
        name: "invalid traffic policy", content: service(extra: "  externalTrafficPolicy: Nearby\n"),
        expected: "spec.externalTrafficPolicy: 'Nearby' is not one of Cluster, Local"),
    BadInput(
        name: "invalid load balancer IP",
        content: service(extra: "status:\n  loadBalancer:\n    ingress:\n    - ip: 192.0.2\n"),
        expected: "status.loadBalancer.ingress[0].ip: '192.0.2' is not a valid IPv4 or IPv6 address"),
    BadInput(
        name: "nodePort is a string",
        content: service(spec: "  type: NodePort\n  ports:\n  - port: 80\n    nodePort: high\n"),
        expected: "spec.ports[0].nodePort: expected a number"),
    BadInput(
        name: "invalid second cluster IP", content: service(extra: "  clusterIPs: [10.96.0.10, \"fd00::1::2\"]\n"),
        expected: "spec.clusterIPs[1]: 'fd00::1::2' is not a valid IPv4 or IPv6 address"),
    BadInput(
        name: "unknown ipMode",
        content: service(extra: "status:\n  loadBalancer:\n    ingress:\n    - {ip: 192.0.2.1, ipMode: Tunnel}\n"),
        expected: "status.loadBalancer.ingress[0].ipMode: 'Tunnel' is not one of VIP, Proxy"),
    BadInput(
        name: "unknown session affinity", content: service(extra: "  sessionAffinity: Cookie\n"),
        expected: "spec.sessionAffinity: 'Cookie' is not one of None, ClientIP"),
    BadInput(
        name: "empty targetPort name", content: service(spec: "  ports:\n  - port: 80\n    targetPort: \"\"\n"),
        expected: "spec.ports[0].targetPort: must be a port number or a port name, not empty"),
    BadInput(
        name: "legacy Endpoints with an invalid address",
        content:
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: db, namespace: shop}\nsubsets:\n- addresses: [{ip: 172.16.5}]\n  ports: [{port: 3306}]\n",
        expected: "(Endpoints shop/db): subsets[0].addresses[0].ip: '172.16.5' is not a valid IPv4 or IPv6 address"),
    BadInput(
        name: "legacy Endpoints port without a number",
        content:
            "apiVersion: v1\nkind: Endpoints\nmetadata: {name: db, namespace: shop}\nsubsets:\n- addresses: [{ip: 172.16.5.1}]\n  ports: [{name: sql}]\n",
        expected: "subsets[0].ports[0].port: missing: this field is required"),
    BadInput(
        name: "a JSON array instead of an object", content: "[1, 2, 3]", file: "input.json",
        expected: "document 1: expected a Kubernetes object (a mapping)"),
    BadInput(
        name: "conditions.ready is not a boolean",
        content: slice().replacingOccurrences(
            of: "- addresses: [\"10.244.1.5\"]", with: "- addresses: [\"10.244.1.5\"]\n  conditions: {ready: [yes]}"),
        expected: "endpoints[0].conditions.ready: expected a single value, found a list"),
    BadInput(
        name: "duplicate service port", content: service(spec: "  ports:\n  - port: 80\n  - port: 80\n"),
        expected: "spec.ports[1]: duplicate port 80/TCP: spec.ports[0] has it already"),
    BadInput(
        name: "healthCheckNodePort above 65535",
        content: service(spec: "  type: LoadBalancer\n  healthCheckNodePort: 70000\n  ports:\n  - port: 80\n"),
        expected: "(Service shop/web): spec.healthCheckNodePort: must be a port number 1-65535, not 70000"),
    BadInput(
        name: "a Node's pod CIDR is not a network",
        content:
            "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec:\n  podCIDRs: [10.244.1.0/24, 10.244.2.0]\n",
        expected: "document 1 (Node node-a): spec.podCIDRs[1]: '10.244.2.0' is not a network in CIDR notation"),
    BadInput(
        name: "a Node's taint without a key",
        content: "apiVersion: v1\nkind: Node\nmetadata: {name: node-a}\nspec:\n  taints: [{effect: NoSchedule}]\n",
        expected: "document 1 (Node node-a): spec.taints[0].key: missing: this field is required"),
]

@Suite("Bad input is refused with a message naming file, document and field", .timeLimit(.minutes(2)))
struct BadInputTests {
    @Test(arguments: badInputs)
    func isRefused(_ input: BadInput) throws {
        let errors = try #require(throws: ManifestErrors.self) { try load(input.content, named: input.file) }
        let message = errors.description
        #expect(message.contains(input.expected), "\(message)")
        #expect(message.contains(input.file), "names the file: \(message)")
    }

    @Test func everyProblemIsReportedNotJustTheFirst() throws {
        let content =
            service(spec: "  ports:\n  - port: 0\n  - port: 80\n    protocol: ICMP\n") + "\n---\n"
            + slice(port: "99999")
        let errors = try #require(throws: ManifestErrors.self) { try load(content) }
        #expect(errors.problems.count == 3)
    }

    @Test func aSliceWithoutServiceLabelIsIgnoredWithAWarning() throws {
        let content = slice().replacingOccurrences(of: "kubernetes.io/service-name: web", with: "app: web")
        let set = try load(content)
        #expect(set.warnings.count == 1)
        #expect(set.warnings.first?.description.contains("has no kubernetes.io/service-name label; ignored") == true)
    }

    @Test func missingPathsAndEmptyFoldersAreTold() throws {
        let errors = try #require(throws: ManifestErrors.self) { try ManifestLoader.load(paths: ["/no/such/place"]) }
        #expect(errors.description == "/no/such/place: no such file or folder")
    }

    @Test func otherKindsAndEmptyDocumentsAreIgnored() throws {
        let content =
            "---\n# nothing\n---\napiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\n---\n" + service()
        let set = try load(content)
        #expect(set.services.count == 1)
        #expect(set.services.first?.location.document == 3)
    }

    @Test func aHundredMegabytesOfRandomBytesAreRefused() throws {
        let folder = URL(fileURLWithPath: try makeTemporaryFolder("random"))
        defer { removeTemporaryFolder(folder.path) }
        let file = folder.appendingPathComponent("noise.yaml")
        _ = FileManager.default.createFile(atPath: file.path, contents: nil)
        let handle = try FileHandle(forWritingTo: file)
        var generator = SystemRandomNumberGenerator()
        for _ in 0..<100 {
            var chunk = [UInt8](repeating: 0, count: 1 << 20)
            for index in stride(from: 0, to: chunk.count, by: 8) {
                withUnsafeBytes(of: generator.next() as UInt64) { chunk.replaceSubrange(index..<index + 8, with: $0) }
            }
            try handle.write(contentsOf: chunk)
        }
        try handle.close()
        let errors = try #require(throws: ManifestErrors.self) { try ManifestLoader.load(paths: [folder.path]) }
        #expect(errors.description.hasSuffix("noise.yaml: not a text file (binary data); expected YAML or JSON"))
    }

    /// Only the start of a file is read before it is refused: a pipe that never ends proves it.
    @Test func aBinaryFileIsRefusedFromItsFirstBytes() throws {
        let folder = URL(fileURLWithPath: try makeTemporaryFolder("fifo"))
        defer { removeTemporaryFolder(folder.path) }
        let path = folder.appendingPathComponent("endless.yaml").path
        #expect(mkfifo(path, 0o600) == 0)
        let writer = Thread {
            let descriptor = open(path, O_WRONLY)
            var bytes = [UInt8](repeating: 0xFF, count: 64 * 1024)
            bytes[0] = 0
            _ = write(descriptor, &bytes, bytes.count)
            // The write end stays open: reading to the end would never return.
            Thread.sleep(forTimeInterval: 30)
            close(descriptor)
        }
        writer.start()
        let errors = try #require(throws: ManifestErrors.self) { try ManifestLoader.load(paths: [path]) }
        #expect(errors.description.contains("endless.yaml: not a text file (binary data)"))
    }

    @Test func aFolderThatCannotBeReadIsNamed() throws {
        let parent = URL(fileURLWithPath: try makeTemporaryFolder("locked"))
        defer { removeTemporaryFolder(parent.path) }
        let folder = parent.appendingPathComponent("manifests")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data("kind: Service\n".utf8).write(to: folder.appendingPathComponent("web.yaml"))
        #expect(chmod(folder.path, 0) == 0)
        // Tests run as root, which reads anything: a thread without the file-access capabilities
        // (CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH) sees the folder as a user would.
        let result = LockedResult()
        let thread = Thread {
            guard test_drop_effective_capabilities(1 << 1 | 1 << 2) == 0 else { return result.set(nil) }
            do {
                _ = try ManifestLoader.load(paths: [folder.path])
                result.set(nil)
            } catch {
                result.set("\(error)")
            }
        }
        thread.start()
        let message = try #require(result.wait())
        #expect(message == "\(folder.path): cannot read this folder: Permission denied")
    }
}

/// A value handed from another thread.
final class LockedResult: Sendable {
    private let done = DispatchSemaphore(value: 0)
    private let value = Mutex<String?>(nil)

    func set(_ value: String?) {
        self.value.withLock { $0 = value }
        done.signal()
    }

    func wait() -> String? {
        done.wait()
        return value.withLock { $0 }
    }
}
