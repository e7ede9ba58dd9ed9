import Foundation
import TestSupport
import Testing

@testable import StateSources

@Suite("Kubeconfig and in-cluster configuration", .timeLimit(.minutes(2)))
struct APIServerConfigurationTests {
    let caPEM = try! Data(contentsOf: URL(fileURLWithPath: fixture("tls/ca.pem")))

    @Test func theCurrentContextsClusterAndUserAreUsed() throws {
        let directory = try makeTemporaryFolder("kubeconfig")
        defer { removeTemporaryFolder(directory) }
        let kubeconfig = """
            apiVersion: v1
            kind: Config
            current-context: admin@prod
            clusters:
            - name: staging
              cluster: {server: "https://staging.example:6443"}
            - name: prod
              cluster:
                server: https://10.0.0.1:6443/
                certificate-authority-data: \(caPEM.base64EncodedString())
            contexts:
            - name: admin@prod
              context: {cluster: prod, user: admin}
            - name: viewer@staging
              context: {cluster: staging, user: viewer}
            users:
            - name: admin
              user: {token: s3cret-token}
            - name: viewer
              user: {tokenFile: viewer.token}
            """
        let path = (directory as NSString).appendingPathComponent("config")
        try Data(kubeconfig.utf8).write(to: URL(fileURLWithPath: path))
        try Data("viewer-token\n".utf8).write(
            to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("viewer.token")))

        let prod = try APIServerConfiguration.kubeconfig(at: path)
        #expect(prod.server == "https://10.0.0.1:6443")
        #expect(prod.bearerToken == "s3cret-token")
        #expect(prod.certificateAuthorityPEM == Array(caPEM))
        // Secrets never appear in the description (which goes to logs).
        #expect(!prod.description.contains("s3cret"))
        #expect(prod.description == "server https://10.0.0.1:6443, bearer token, cluster CA")

        let staging = try APIServerConfiguration.kubeconfig(at: path, context: "viewer@staging")
        #expect(staging.bearerToken == "viewer-token")
        #expect(staging.certificateAuthorityPEM == nil)

        let missing = try #require(throws: ConfigurationError.self) {
            try APIServerConfiguration.kubeconfig(at: path, context: "nope")
        }
        #expect(missing.description.hasSuffix("config: no context named 'nope'"))
    }

    @Test func clientCertificatesAreReadFromFiles() async throws {
        let directory = try makeTemporaryFolder("kubeconfig")
        defer { removeTemporaryFolder(directory) }
        let kubeconfig = """
            current-context: c
            clusters: [{name: k, cluster: {server: "https://127.0.0.1:6443", certificate-authority: ca.pem}}]
            contexts: [{name: c, context: {cluster: k, user: u}}]
            users: [{name: u, user: {client-certificate: \(fixture("tls/server.pem")), client-key: \(fixture("tls/server.key"))}}]
            """
        let path = (directory as NSString).appendingPathComponent("config")
        try Data(kubeconfig.utf8).write(to: URL(fileURLWithPath: path))
        try caPEM.write(to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("ca.pem")))
        let configuration = try APIServerConfiguration.kubeconfig(at: path)
        #expect(configuration.clientCertificatePEM?.isEmpty == false)
        #expect(configuration.clientKeyPEM?.isEmpty == false)
        #expect(configuration.certificateAuthorityPEM == Array(caPEM))
        // The certificate and key load into a TLS configuration.
        let client = try KubernetesAPIClient(configuration: configuration)
        try await client.shutdown()
    }

    @Test func inClusterUsesTheServiceAccount() throws {
        let secrets = try makeTemporaryFolder("secrets")
        defer { removeTemporaryFolder(secrets) }
        try caPEM.write(to: URL(fileURLWithPath: (secrets as NSString).appendingPathComponent("ca.crt")))
        try Data("sa-token\n".utf8).write(
            to: URL(fileURLWithPath: (secrets as NSString).appendingPathComponent("token")))
        let configuration = try APIServerConfiguration.inCluster(
            environment: ["KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"],
            secrets: secrets)
        #expect(configuration.server == "https://[fd00:10:96::1]:443")
        #expect(configuration.bearerToken == "sa-token")
        let outside = try #require(throws: ConfigurationError.self) {
            try APIServerConfiguration.inCluster(environment: [:], secrets: secrets)
        }
        #expect(outside.description.contains("not running in a pod"))
    }
}

@Suite("A rotating service-account token", .timeLimit(.minutes(2)))
struct TokenFileTests {
    /// Replaces the file as kubelet does for a projected token: a new file renamed over the old one.
    private func rotate(_ path: String, to token: String) throws {
        try token.write(toFile: path + ".new", atomically: false, encoding: .utf8)
        #expect(rename(path + ".new", path) == 0)
    }

    @Test func eachRequestCarriesTheTokenInTheFileNow() async throws {
        try await withTemporaryFolder("token") { folder in
            let path = folder + "/token"
            try "first-token\n".write(toFile: path, atomically: false, encoding: .utf8)
            var configuration = APIServerConfiguration(server: "https://127.0.0.1:1")
            configuration.bearerToken = "first-token"
            configuration.bearerTokenFile = path
            let client = try KubernetesAPIClient(configuration: configuration)
            #expect(client.request("/api/v1/services").headers["Authorization"] == ["Bearer first-token"])
            try rotate(path, to: "second-token")
            #expect(client.request("/api/v1/services").headers["Authorization"] == ["Bearer second-token"])
            // Mid-rotation, with no file, the last token read is kept.
            #expect(unlink(path) == 0)
            #expect(client.request("/api/v1/services").headers["Authorization"] == ["Bearer second-token"])
            try await client.shutdown()
        }
    }

    @Test func kubeadmsKubeconfigNamesTheServiceAccountsTokenFile() throws {
        try withTemporaryFolder("kubeadm-kubeconfig") { folder in
            // kubeadm's kubeconfig.conf (Tests/Fixtures/kubeadm), with its absolute paths moved into the folder.
            let fixture = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
                .appendingPathComponent("Fixtures/kubeadm/kube-proxy-kubeconfig.conf").path
            let text = try String(contentsOfFile: fixture, encoding: .utf8)
                .replacingOccurrences(of: "/var/run/secrets/kubernetes.io/serviceaccount", with: folder)
            try text.write(toFile: folder + "/kubeconfig.conf", atomically: false, encoding: .utf8)
            try "sa-token".write(toFile: folder + "/token", atomically: false, encoding: .utf8)
            try Data().write(to: URL(fileURLWithPath: folder + "/ca.crt"))
            let configuration = try APIServerConfiguration.kubeconfig(at: folder + "/kubeconfig.conf")
            #expect(configuration.server == "https://controlplane:6443")
            #expect(configuration.bearerToken == "sa-token")
            #expect(configuration.bearerTokenFile == folder + "/token")
        }
    }
}
