import ArgumentParser
import HostSystem
import IPVSModel

#if canImport(Glibc)
    import Glibc
#endif

/// The documented exit statuses.
enum ExitStatus {
    /// A failure: the kernel refused something, a file could not be written, ...
    static let failure = ExitCode(1)
    /// Bad input or usage; nothing was applied.
    static let badInput = ExitCode(2)
    /// Applied, but a virtual server that ipvs-proxy does not own blocked a key it wanted.
    static let foreignConflict = ExitCode(3)
}

/// Writes a line to standard error, prefixed with the program's name.
func printError(_ message: String) {
    writeStandardError("ipvs-proxy: \(message)\n")
}

/// Writes bytes to standard output, all of them.
func writeStandardOutput(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { buffer in
        var offset = 0
        while offset < buffer.count {
            let written = write(STDOUT_FILENO, buffer.baseAddress! + offset, buffer.count - offset)
            if written <= 0 { return }
            offset += written
        }
    }
}

/// Writes text to standard error as is.
func writeStandardError(_ text: String) {
    var text = text
    text.withUTF8 { _ = write(STDERR_FILENO, $0.baseAddress, $0.count) }
}

/// Runs `body`; an error it throws is printed to standard error as one line and becomes exit status 1.
func reportingFailures(_ body: () throws -> Void) throws {
    do {
        try body()
    } catch let exit as ExitCode {
        throw exit
    } catch {
        printError("\(error)")
        throw ExitStatus.failure
    }
}

/// Stops with a clear message when the process lacks CAP_NET_ADMIN, before any kernel call fails with a
/// bare EPERM.
func requireNetworkAdministration() throws {
    if Privileges.hasNetworkAdministration() == false {
        printError(Privileges.missingNetworkAdministration)
        throw ExitStatus.failure
    }
}
