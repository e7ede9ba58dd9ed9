import Foundation
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
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("manifests-\(UUID().uuidString)")
    try! FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
    let file = folder.appendingPathComponent(name)
    try! Data(content.utf8).write(to: file)
    return try ManifestLoader.load(paths: [file.path])
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
        name: "duplicate service port", content: service(spec: "  ports:\n  - port: 80\n  - port: 80\n"),
        expected: "spec.ports[1]: duplicate port 80/TCP: spec.ports[0] has it already"),
]

@Suite("Bad input is refused with a message naming file, document and field")
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

    @Test func randomBytesAreRefusedAfterReadingOnlyTheirStart() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("random-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let file = folder.appendingPathComponent("noise.yaml")
        var generator = SystemRandomNumberGenerator()
        let bytes = (0..<(1 << 20)).map { _ in UInt8.random(in: 0...255, using: &generator) }
        try Data(bytes).write(to: file)
        let errors = try #require(throws: ManifestErrors.self) { try ManifestLoader.load(paths: [folder.path]) }
        #expect(errors.description.contains("noise.yaml: not a text file (binary data)"))
    }
}
