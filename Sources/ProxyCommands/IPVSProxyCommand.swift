import ArgumentParser
import CProxyVersion

/// The `ipvs-proxy` command line.
package struct IPVSProxyCommand: AsyncParsableCommand {
    package static let configuration = CommandConfiguration(
        commandName: "ipvs-proxy",
        abstract: "A Kubernetes node service proxy that programs the kernel's IPVS directly over netlink.",
        discussion: """
            ipvs-proxy turns Kubernetes Services and EndpointSlices into IPVS virtual and real servers, as \
            kube-proxy does in IPVS mode, and changes only what differs from the kernel's table.

            Exit status: 0 done; 1 failure; 2 bad input or usage (nothing applied); 3 applied, but a virtual \
            server that ipvs-proxy does not own blocked a key it wanted.
            """,
        version: ProxyVersion.current,
        subcommands: [SyncCommand.self, RunCommand.self, Show.self, CleanupCommand.self, Version.self]
    )

    package init() {}

    /// Parses the process's arguments and runs the chosen subcommand, then exits.
    ///
    /// Spelled out rather than calling `main()`: from another module, overload resolution picks the
    /// synchronous `ParsableCommand.main`, which refuses an asynchronous command tree.
    package static func runAsMain() async -> Never {
        do {
            var command = try await asyncParseAsRoot()
            if var asyncCommand = command as? AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
            Self.exit()
        } catch {
            // Usage errors exit with 2 like bad input, not with the parser's 64 (EX_USAGE).
            if exitCode(for: error) == .validationFailure {
                writeStandardError(fullMessage(for: error) + "\n")
                Self.exit(withError: ExitStatus.badInput)
            }
            Self.exit(withError: error)
        }
    }
}

/// The program's own version.
enum ProxyVersion {
    /// The version in the source; scripts/release reads it from here.
    static let base = "0.1.0"
    /// The version scripts/release stamped in at link time ("0.1.0-57-g2761e72"), or `base` when unstamped.
    static let current: String = {
        let stamp = String(cString: ipvs_proxy_version_stamp())
        return stamp.isEmpty ? base : stamp
    }()
}

/// Where the kernel state lives: the caller's network namespace or a named one.
struct NamespaceOptions: ParsableArguments {
    @Option(
        name: .customLong("netns"),
        help: ArgumentHelp(
            "Operate inside this named network namespace (/var/run/netns/NAME) instead of the current one.",
            valueName: "name"))
    var networkNamespace: String?

    var networkNamespacePath: String? {
        networkNamespace.map { $0.contains("/") ? $0 : "/var/run/netns/\($0)" }
    }
}

/// Output formats of commands that report.
enum OutputFormat: String, ExpressibleByArgument, CaseIterable {
    case text
    case json
}
