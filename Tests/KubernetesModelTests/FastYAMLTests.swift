import Foundation
import Testing

@testable import KubernetesModel

/// Decodes `text` as a YAML file with the fast decoder (when it vouches for it) and with Yams', and expects
/// the same objects, locations and problems.
private func expectSameYAML(
    _ text: String, _ comment: Comment? = nil, sourceLocation: SourceLocation = #_sourceLocation
) {
    var fast = ManifestSet()
    var full = ManifestSet()
    var fastProblems: [ManifestProblem] = []
    var fullProblems: [ManifestProblem] = []
    ManifestLoader.decode(text, file: "x.yaml", into: &fast, problems: &fastProblems, fastPath: true)
    ManifestLoader.decode(text, file: "x.yaml", into: &full, problems: &fullProblems, fastPath: false)
    #expect(fast.services.map(\.object) == full.services.map(\.object), comment, sourceLocation: sourceLocation)
    #expect(fast.services.map(\.location) == full.services.map(\.location), comment, sourceLocation: sourceLocation)
    #expect(
        fast.endpointSlices.map(\.object) == full.endpointSlices.map(\.object), comment, sourceLocation: sourceLocation)
    #expect(
        fast.endpointSlices.map(\.location) == full.endpointSlices.map(\.location), comment,
        sourceLocation: sourceLocation)
    #expect(fast.endpoints.map(\.object) == full.endpoints.map(\.object), comment, sourceLocation: sourceLocation)
    #expect(fast.nodes.map(\.object) == full.nodes.map(\.object), comment, sourceLocation: sourceLocation)
    #expect(
        fast.serviceCIDRs.map(\.object) == full.serviceCIDRs.map(\.object), comment, sourceLocation: sourceLocation)
    #expect(
        fast.serviceCIDRs.map(\.location) == full.serviceCIDRs.map(\.location), comment, sourceLocation: sourceLocation)
    #expect(fastProblems == fullProblems, comment, sourceLocation: sourceLocation)
}

private let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
    .deletingLastPathComponent()

@Suite("The fast YAML decoder agrees with Yams'", .timeLimit(.minutes(2)))
struct FastYAMLTests {
    /// kubectl's own output (keys sorted, `items` before `kind: List`, last-applied annotations), and the
    /// examples: the fast decoder takes them itself, without falling back.
    @Test(arguments: [
        "Tests/Fixtures/recorded-api/kubectl-get-all.yaml", "examples/web.yaml", "examples/dns.yaml",
        "examples/headless.yaml", "examples/loadbalancer.yaml",
    ])
    func takesRealFilesItself(_ path: String) throws {
        let text = try String(contentsOf: repository.appendingPathComponent(path), encoding: .utf8)
        let items = try #require(FastManifestDecoder.decodeYAML(text), "\(path) fell back")
        #expect(!items.isEmpty)
        expectSameYAML(text, "\(path)")
    }

    /// A ServiceCIDR as `kubectl get servicecidr -o yaml` prints it (keys sorted, status last): the fast decoder
    /// reads it itself.
    @Test func takesAServiceCIDRItself() throws {
        let text = """
            apiVersion: networking.k8s.io/v1
            kind: ServiceCIDR
            metadata:
              creationTimestamp: "2026-11-25T13:49:41Z"
              finalizers:
              - networking.k8s.io/service-cidr-finalizer
              name: kubernetes
            spec:
              cidrs:
              - 10.96.0.0/12
              - fd00:10:96::/108
            status:
              conditions:
              - lastTransitionTime: "2026-11-25T13:49:42Z"
                message: Kubernetes default Service CIDR is ready
                reason: ""
                status: "True"
                type: Ready
            """
        let items = try #require(FastManifestDecoder.decodeYAML(text))
        guard case .serviceCIDR(let object) = try #require(items.first?.item) else {
            Issue.record("not a ServiceCIDR: \(items)")
            return
        }
        #expect(object.spec?.cidrs == ["10.96.0.0/12", "fd00:10:96::/108"])
        #expect(object.isReady)
        expectSameYAML(text)
    }

    @Test func countsDocumentsAsYamsDoes() throws {
        let text = """
            # a comment only
            ---
            ---
            apiVersion: v1
            kind: Service
            metadata: {name: a, namespace: x}
            spec: {clusterIP: 10.0.0.1, ports: [{port: 80}]}
            ---
            ~
            ---
            apiVersion: v1
            kind: ConfigMap
            metadata: {name: c}
            ---
            kind: Service
            metadata: {name: b}
            spec: {ports: [{port: 81, targetPort: http, name: "web"}]}
            """
        let items = try #require(FastManifestDecoder.decodeYAML(text))
        #expect(items.map(\.document) == [2, 4, 5])
        expectSameYAML(text)
    }

    /// What Yams reads otherwise than the fast decoder would, or what only it can read, falls back to it; the
    /// result is the same either way.
    @Test(arguments: [
        // Aliases, merge keys, explicit tags.
        "kind: Service\nmetadata: {name: &n a}\nspec: {ports: [{port: 80, name: *n}]}\n",
        "kind: Service\nmetadata: {name: a}\nspec:\n  base: &b {clusterIP: 10.0.0.1}\n  <<: *b\n",
        "kind: Service\nmetadata: {name: !!str a}\nspec: {ports: [{port: 80}]}\n",
        // Numbers Yams reads in its own way.
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 0x50}]}\n",
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: \"80\"}]}\n",
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80, targetPort: \"8080\"}]}\n",
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80, targetPort: 1_000}]}\n",
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 080}]}\n",
        // Words Yams reads as booleans or null.
        "kind: EndpointSlice\nmetadata: {name: s}\naddressType: IPv4\nendpoints: [{addresses: [10.0.0.1], conditions: {ready: yes}}]\n",
        "kind: Service\nmetadata: {name: Null}\nspec: {ports: [{port: 80}]}\n",
        "kind: Service\nmetadata: {name: a, labels: {x: ~}}\n",
        // A number where text goes: Yams takes its text.
        "kind: Service\nmetadata: {name: 80, namespace: true}\nspec: {ports: [{port: 80, name: 1.5}]}\n",
        // Duplicates (Yams refuses them in skipped objects too: found by fuzzing), a root that is not a mapping,
        // a broken document, an alias that names no anchor in a skipped object.
        "kind: Service\nmetadata: {name: a, name: b}\n",
        "kind: Deployment\nspec: {selector: a, selector: b}\n---\nkind: Service\nmetadata: {name: a}\n",
        "kind: Service\nmetadata: {name: a}\nstatus: {conditions: [{type: x, type: y}]}\n",
        // A ServiceCIDR's condition whose status Yams reads as a boolean; a spec before the kind.
        "kind: ServiceCIDR\nmetadata: {name: c}\nstatus: {conditions: [{type: Ready, status: True}]}\n",
        "spec: {cidrs: [10.96.0.0/12]}\nkind: ServiceCIDR\nmetadata: {name: c}\n",
        "kind: Deployment\nspec: {x: *nothing}\n",
        "NULL\n",
        "- a\n- b\n",
        "kind: Service\nmetadata: [broken\n",
        "kind: Service\nmetadata: {name: a}\nspec: {ports: [{port: 80}]}\n---\nkind: Service\nmetadata: 5\n",
    ])
    func agreesWhereItFallsBackOrNot(_ text: String) {
        expectSameYAML(text, "\(text)")
    }

    @Test func quotedAndBlockStringsAreText() throws {
        let text = """
            kind: Service
            metadata:
              name: 'a'
              annotations:
                note: |
                  two
                  lines
                folded: >
                  one
                  line
                empty: ""
            spec:
              clusterIP: "10.0.0.1"
              ports:
              - {port: 80, targetPort: http, protocol: "TCP"}
            """
        let items = try #require(FastManifestDecoder.decodeYAML(text))
        guard case .service(let service)? = items.first?.item else {
            Issue.record("not a Service")
            return
        }
        #expect(service.metadata.annotations?["note"] == "two\nlines\n")
        #expect(service.metadata.annotations?["folded"] == "one line\n")
        #expect(service.metadata.annotations?["empty"] == "")
        #expect(service.spec.ports?.first?.targetPort == .string("http"))
        expectSameYAML(text)
    }

    @Test func countsWhatFallsBack() {
        let before = FastDecodingFallbacks.total
        var set = ManifestSet()
        var problems: [ManifestProblem] = []
        ManifestLoader.decode(
            "kind: Service\nmetadata: {name: &n a}\nspec: {ports: [{port: 80, name: *n}]}\n", file: "a.yaml",
            into: &set, problems: &problems)
        #expect(FastDecodingFallbacks.total >= before + 1)
    }
}
