import Foundation
import Yams

/// How to reach and authenticate to a Kubernetes API server.
///
/// The token and key are secrets: ``description`` never shows them.
package struct APIServerConfiguration: Sendable, CustomStringConvertible {
    /// `https://host:port`, without a trailing slash.
    package var server: String
    /// PEM certificates of the cluster CA that the server's certificate must chain to.
    package var certificateAuthorityPEM: [UInt8]?
    package var bearerToken: String?
    /// Where the bearer token is kept, when it came from a file: read again as the file is replaced.
    package var bearerTokenFile: String?
    package var clientCertificatePEM: [UInt8]?
    package var clientKeyPEM: [UInt8]?
    /// Only ever from a kubeconfig that asks for it explicitly.
    package var insecureSkipTLSVerify = false

    package init(server: String, certificateAuthorityPEM: [UInt8]? = nil, bearerToken: String? = nil) {
        self.server = server.hasSuffix("/") ? String(server.dropLast()) : server
        self.certificateAuthorityPEM = certificateAuthorityPEM
        self.bearerToken = bearerToken
    }

    package var description: String {
        var parts = ["server \(server)"]
        if let bearerTokenFile {
            parts.append("bearer token from \(bearerTokenFile)")
        } else if bearerToken != nil {
            parts.append("bearer token")
        }
        if clientCertificatePEM != nil { parts.append("client certificate") }
        if certificateAuthorityPEM != nil { parts.append("cluster CA") }
        if insecureSkipTLSVerify { parts.append("TLS NOT VERIFIED") }
        return parts.joined(separator: ", ")
    }

    /// The in-cluster service account: `KUBERNETES_SERVICE_HOST`/`PORT`, and the token and CA mounted at
    /// `/var/run/secrets/kubernetes.io/serviceaccount`.
    package static func inCluster(
        environment: [String: String] = ProcessInfo.processInfo.environment,
        secrets: String = "/var/run/secrets/kubernetes.io/serviceaccount"
    ) throws -> APIServerConfiguration {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], let port = environment["KUBERNETES_SERVICE_PORT"]
        else {
            throw ConfigurationError(
                "not running in a pod (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT are not set); give --kubeconfig or --manifests"
            )
        }
        let hostPart = host.contains(":") ? "[\(host)]" : host
        var configuration = APIServerConfiguration(
            server: "https://\(hostPart):\(port)", certificateAuthorityPEM: try readFile("\(secrets)/ca.crt"))
        configuration.bearerToken = String(decoding: try readFile("\(secrets)/token"), as: UTF8.self)
            .trimmingCharacters(in: .whitespacesAndNewlines)
        configuration.bearerTokenFile = "\(secrets)/token"
        return configuration
    }

    /// The cluster and user of a kubeconfig's current context (or of `context`).
    package static func kubeconfig(at path: String, context: String? = nil) throws -> APIServerConfiguration {
        let text = String(decoding: try readFile(path), as: UTF8.self)
        let config: KubeConfigFile
        do {
            config = try YAMLDecoder().decode(KubeConfigFile.self, from: text)
        } catch {
            throw ConfigurationError("\(path): not a kubeconfig: \(error)")
        }
        let folder = (path as NSString).deletingLastPathComponent
        func resolve(_ file: String) -> String {
            file.hasPrefix("/") ? file : (folder as NSString).appendingPathComponent(file)
        }
        guard let contextName = context ?? config.currentContext, !contextName.isEmpty else {
            throw ConfigurationError("\(path): no current-context")
        }
        guard let selected = config.contexts?.first(where: { $0.name == contextName })?.context else {
            throw ConfigurationError("\(path): no context named '\(contextName)'")
        }
        guard let cluster = config.clusters?.first(where: { $0.name == selected.cluster })?.cluster else {
            throw ConfigurationError(
                "\(path): context '\(contextName)' names cluster '\(selected.cluster)', which is not defined")
        }
        var configuration = APIServerConfiguration(server: cluster.server)
        configuration.insecureSkipTLSVerify = cluster.insecureSkipTLSVerify ?? false
        if let data = cluster.certificateAuthorityData {
            configuration.certificateAuthorityPEM = try decodeBase64(
                data, field: "certificate-authority-data", in: path)
        } else if let file = cluster.certificateAuthority {
            configuration.certificateAuthorityPEM = try readFile(resolve(file))
        }
        if let userName = selected.user {
            guard let user = config.users?.first(where: { $0.name == userName })?.user else {
                throw ConfigurationError(
                    "\(path): context '\(contextName)' names user '\(userName)', which is not defined")
            }
            if let token = user.token {
                configuration.bearerToken = token
            } else if let file = user.tokenFile {
                configuration.bearerToken = String(decoding: try readFile(resolve(file)), as: UTF8.self)
                    .trimmingCharacters(in: .whitespacesAndNewlines)
                configuration.bearerTokenFile = resolve(file)
            }
            if let data = user.clientCertificateData {
                configuration.clientCertificatePEM = try decodeBase64(data, field: "client-certificate-data", in: path)
            } else if let file = user.clientCertificate {
                configuration.clientCertificatePEM = try readFile(resolve(file))
            }
            if let data = user.clientKeyData {
                configuration.clientKeyPEM = try decodeBase64(data, field: "client-key-data", in: path)
            } else if let file = user.clientKey {
                configuration.clientKeyPEM = try readFile(resolve(file))
            }
        }
        guard configuration.server.hasPrefix("https://") || configuration.server.hasPrefix("http://") else {
            throw ConfigurationError("\(path): cluster server '\(cluster.server)' is not an http(s) URL")
        }
        return configuration
    }

    private static func readFile(_ path: String) throws -> [UInt8] {
        guard let data = FileManager.default.contents(atPath: path) else {
            throw ConfigurationError("\(path): cannot read")
        }
        return Array(data)
    }

    private static func decodeBase64(_ text: String, field: String, in path: String) throws -> [UInt8] {
        guard let data = Data(base64Encoded: text, options: .ignoreUnknownCharacters) else {
            throw ConfigurationError("\(path): \(field) is not base64")
        }
        return Array(data)
    }
}

/// A kubeconfig or in-cluster configuration that cannot be used.
package struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    package var description: String
    init(_ description: String) { self.description = description }
}

/// The parts of a kubeconfig file the proxy reads.
private struct KubeConfigFile: Decodable {
    var currentContext: String?
    var contexts: [Named<Context>]?
    var clusters: [Named<Cluster>]?
    var users: [NamedUser]?

    enum CodingKeys: String, CodingKey {
        case currentContext = "current-context"
        case contexts, clusters, users
    }

    struct Named<Value: Decodable>: Decodable {
        var name: String
        var value: Value

        enum CodingKeys: String, CodingKey { case name, context, cluster }

        init(from decoder: any Decoder) throws {
            let container = try decoder.container(keyedBy: CodingKeys.self)
            name = try container.decode(String.self, forKey: .name)
            value =
                try container.decodeIfPresent(Value.self, forKey: .context)
                ?? container.decode(Value.self, forKey: .cluster)
        }

        var context: Value { value }
        var cluster: Value { value }
    }

    struct NamedUser: Decodable {
        var name: String
        var user: User
    }

    struct Context: Decodable {
        var cluster: String
        var user: String?
    }

    struct Cluster: Decodable {
        var server: String
        var certificateAuthority: String?
        var certificateAuthorityData: String?
        var insecureSkipTLSVerify: Bool?

        enum CodingKeys: String, CodingKey {
            case server
            case certificateAuthority = "certificate-authority"
            case certificateAuthorityData = "certificate-authority-data"
            case insecureSkipTLSVerify = "insecure-skip-tls-verify"
        }
    }

    struct User: Decodable {
        var token: String?
        var tokenFile: String?
        var clientCertificate: String?
        var clientCertificateData: String?
        var clientKey: String?
        var clientKeyData: String?

        enum CodingKeys: String, CodingKey {
            case token, tokenFile
            case clientCertificate = "client-certificate"
            case clientCertificateData = "client-certificate-data"
            case clientKey = "client-key"
            case clientKeyData = "client-key-data"
        }
    }
}
