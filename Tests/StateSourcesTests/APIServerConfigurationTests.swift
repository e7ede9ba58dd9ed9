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
