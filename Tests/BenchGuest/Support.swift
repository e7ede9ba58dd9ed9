// What the bench's guest side is made of: the clock, starting and waiting for commands, files, the daemon's
// /metrics and the fake API server's control port over plain HTTP, /proc.
import Foundation

#if canImport(Glibc)
    import Glibc
#elseif canImport(Musl)
    import Musl
#endif

/// The kernel's monotonic clock in ns: CLOCK_MONOTONIC, the clock of `/proc/timer_list`'s `now at` line, which the
/// shell version of this program read.
func monotonicNanoseconds() -> Int64 {
    var time = timespec()
    clock_gettime(CLOCK_MONOTONIC, &time)
    return Int64(time.tv_sec) * 1_000_000_000 + Int64(time.tv_nsec)
}

/// Sleeps `seconds` (as `sleep 0.05` did).
func pause(_ seconds: Double) {
    var request = timespec(tv_sec: Int(seconds), tv_nsec: Int((seconds - Double(Int(seconds))) * 1e9))
    var remaining = timespec()
    while nanosleep(&request, &remaining) != 0 && errno == EINTR { request = remaining }
}

/// Writes to the console (stdout) at once: the commands this program starts write there too.
func printLine(_ line: String) {
    let bytes = Array((line + "\n").utf8)
    var offset = 0
    while offset < bytes.count {
        let written = bytes[offset...].withUnsafeBytes { write(1, $0.baseAddress, $0.count) }
        if written < 0 {
            if errno == EINTR { continue }
            return
        }
        offset += written
    }
}

// MARK: - Commands

/// Where a started command's standard input, output or error goes.
enum Redirect {
    /// As this program's.
    case inherit
    /// From this file (input) or into it, truncated (output).
    case file(String)
    /// Output only: into the standard output's file (for `2>&1`).
    case toOutput
}

/// A command started by `start`.
struct Child {
    let pid: pid_t
    /// Its exit status once `finished` or `wait` saw it.
    private(set) var status: Int32?

    init(pid: pid_t) { self.pid = pid }

    /// Waits for it and returns its status as a shell says it: the exit code, or 128 + the signal.
    mutating func wait() -> Int32 {
        if let status { return status }
        var raw: Int32 = 0
        while waitpid(pid, &raw, 0) < 0 {
            guard errno == EINTR else { return 127 }
        }
        status = Self.shellStatus(raw)
        return status!
    }

    /// Whether it is still running (it is reaped, and its status kept, once it is not).
    mutating func isRunning() -> Bool {
        guard status == nil else { return false }
        var raw: Int32 = 0
        let result = waitpid(pid, &raw, WNOHANG)
        if result == pid {
            status = Self.shellStatus(raw)
            return false
        }
        return result == 0
    }

    func signal(_ number: Int32) { kill(pid, number) }

    private static func shellStatus(_ raw: Int32) -> Int32 {
        raw & 0x7f == 0 ? (raw >> 8) & 0xff : 128 + (raw & 0x7f)
    }
}

/// Starts `arguments` (the program found in PATH), with the given redirections; nil (after saying why) when it
/// cannot be started.
func start(
    _ arguments: [String], input: Redirect = .inherit, output: Redirect = .inherit, error: Redirect = .inherit,
    extraEnvironment: [String: String] = [:], outputDescriptor: Int32? = nil
) -> Child? {
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    if case .file(let path) = input { posix_spawn_file_actions_addopen(&actions, 0, path, O_RDONLY, 0) }
    if let outputDescriptor {
        posix_spawn_file_actions_adddup2(&actions, outputDescriptor, 1)
    } else if case .file(let path) = output {
        posix_spawn_file_actions_addopen(&actions, 1, path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    }
    switch error {
    case .file(let path): posix_spawn_file_actions_addopen(&actions, 2, path, O_WRONLY | O_CREAT | O_TRUNC, 0o644)
    case .toOutput: posix_spawn_file_actions_adddup2(&actions, 1, 2)
    case .inherit: break
    }
    // Default signal handling and no blocked signals in the child, whatever this process has.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    var none = sigset_t()
    sigemptyset(&none)
    posix_spawnattr_setsigmask(&attributes, &none)
    var reset = sigset_t()
    sigemptyset(&reset)
    for signal in [SIGPIPE, SIGINT, SIGTERM, SIGQUIT, SIGCHLD, SIGHUP] { sigaddset(&reset, signal) }
    posix_spawnattr_setsigdefault(&attributes, &reset)
    posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))

    var environment = ProcessInfo.processInfo.environment
    environment.merge(extraEnvironment) { $1 }
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer {
        for pointer in argv { free(pointer) }
        for pointer in envp { free(pointer) }
    }
    var pid = pid_t()
    let result = posix_spawnp(&pid, arguments[0], &actions, &attributes, argv, envp)
    guard result == 0 else {
        say("cannot start \(arguments[0]): \(String(cString: strerror(result)))")
        return nil
    }
    return Child(pid: pid)
}

/// Runs a command to its end; its status (127 when it could not be started).
@discardableResult
func execute(_ arguments: [String], input: Redirect = .inherit, output: Redirect = .inherit, error: Redirect = .inherit)
    -> Int32
{
    guard var child = start(arguments, input: input, output: output, error: error) else { return 127 }
    return child.wait()
}

/// Runs a command and returns its status and standard output (its standard error as given).
func capture(_ arguments: [String], error: Redirect = .inherit) -> (status: Int32, output: String) {
    var descriptors: [Int32] = [0, 0]
    guard pipe(&descriptors) == 0 else { return (127, "") }
    for descriptor in descriptors { _ = fcntl(descriptor, F_SETFD, FD_CLOEXEC) }
    let child = start(arguments, error: error, outputDescriptor: descriptors[1])
    close(descriptors[1])
    var data = Data()
    var buffer = [UInt8](repeating: 0, count: 65536)
    while true {
        let count = buffer.withUnsafeMutableBytes { read(descriptors[0], $0.baseAddress, $0.count) }
        if count < 0 && errno == EINTR { continue }
        if count <= 0 { break }
        data.append(buffer, count: count)
    }
    close(descriptors[0])
    guard var child else { return (127, "") }
    return (child.wait(), String(decoding: data, as: UTF8.self))
}

// MARK: - Files

func readText(_ path: String) -> String {
    (try? String(contentsOfFile: path, encoding: .utf8)) ?? ""
}

/// A file's lines, as `sort`, `grep` and `head` see them (no empty last one for the final newline).
func lines(_ text: String) -> [Substring] {
    var result = text.split(separator: "\n", omittingEmptySubsequences: false)
    if result.last == "" { result.removeLast() }
    return result
}

func readLines(_ path: String) -> [Substring] { lines(readText(path)) }

/// `wc -l`: the number of newlines.
func newlineCount(_ text: String) -> Int { text.utf8.reduce(0) { $1 == UInt8(ascii: "\n") ? $0 + 1 : $0 } }

/// `grep -c`: the lines that contain `needle`.
func countLines(_ text: String, containing needle: String) -> Int {
    lines(text).reduce(0) { $1.contains(needle) ? $0 + 1 : $0 }
}

func writeText(_ path: String, _ text: String) {
    if !FileManager.default.createFile(atPath: path, contents: Data(text.utf8)) { say("cannot write \(path)") }
}

func appendLine(_ path: String, _ line: String) {
    let descriptor = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0o644)
    guard descriptor >= 0 else { return }
    let bytes = Array((line + "\n").utf8)
    _ = bytes.withUnsafeBytes { write(descriptor, $0.baseAddress, $0.count) }
    close(descriptor)
}

func remove(_ path: String) { try? FileManager.default.removeItem(atPath: path) }

func fileSize(_ path: String) -> Int {
    ((try? FileManager.default.attributesOfItem(atPath: path))?[.size] as? NSNumber)?.intValue ?? 0
}

// MARK: - /proc

/// A field of a process's `/proc/PID/status` in KiB (VmHWM: its peak RSS, VmRSS: its RSS now); 0 if unknown.
func statusKiB(_ pid: pid_t, _ field: String) -> Int {
    for line in readLines("/proc/\(pid)/status") {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        if words.first == Substring(field + ":"), words.count > 1, let value = Int(words[1]) { return value }
    }
    return 0
}

// MARK: - HTTP

/// `GET http://ADDRESS/PATH` (ADDRESS: IPv4 `host:port`) over a fresh connection, as `wget -q -O FILE` did: the
/// body of a 2xx answer, nil on anything else or after `timeout` seconds without data.
func httpGet(_ address: String, _ path: String, timeout: Int = 60) -> String? {
    let parts = address.split(separator: ":")
    guard parts.count == 2, let port = UInt16(parts[1]) else { return nil }
    let descriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
    guard descriptor >= 0 else { return nil }
    defer { close(descriptor) }
    var limit = timeval(tv_sec: timeout, tv_usec: 0)
    setsockopt(descriptor, SOL_SOCKET, SO_RCVTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    setsockopt(descriptor, SOL_SOCKET, SO_SNDTIMEO, &limit, socklen_t(MemoryLayout<timeval>.size))
    var target = sockaddr_in()
    target.sin_family = sa_family_t(AF_INET)
    target.sin_port = port.bigEndian
    guard inet_pton(AF_INET, String(parts[0]), &target.sin_addr) == 1 else { return nil }
    let connected = withUnsafePointer(to: &target) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
    guard connected == 0 else { return nil }
    let request = Array("GET \(path) HTTP/1.1\r\nHost: \(address)\r\nConnection: close\r\n\r\n".utf8)
    var sent = 0
    while sent < request.count {
        let count = request[sent...].withUnsafeBytes { send(descriptor, $0.baseAddress, $0.count, Int32(MSG_NOSIGNAL)) }
        if count < 0 && errno == EINTR { continue }
        guard count > 0 else { return nil }
        sent += count
    }
    var answer = [UInt8]()
    var buffer = [UInt8](repeating: 0, count: 65536)
    var expected: Int?
    while expected.map({ answer.count < $0 }) ?? true {
        let count = buffer.withUnsafeMutableBytes { recv(descriptor, $0.baseAddress, $0.count, 0) }
        if count < 0 && errno == EINTR { continue }
        guard count >= 0 else { return nil }
        if count == 0 { break }
        answer.append(contentsOf: buffer[..<count])
        if expected == nil, let end = headerEnd(answer) {
            let head = String(decoding: answer[..<end], as: UTF8.self).lowercased()
            if let line = head.split(separator: "\r\n").first(where: { $0.hasPrefix("content-length:") }),
                let length = Int(line.dropFirst("content-length:".count).trimmingCharacters(in: .whitespaces))
            {
                expected = end + 4 + length
            }
        }
    }
    guard let end = headerEnd(answer) else { return nil }
    let statusLine = String(decoding: answer[..<end], as: UTF8.self).split(separator: "\r\n").first ?? ""
    let words = statusLine.split(separator: " ")
    guard words.count >= 2, let code = Int(words[1]), (200..<300).contains(code) else { return nil }
    return String(decoding: answer[(end + 4)...], as: UTF8.self)
}

private func headerEnd(_ bytes: [UInt8]) -> Int? {
    guard bytes.count >= 4 else { return nil }
    for index in 0...(bytes.count - 4)
    where bytes[index] == 13 && bytes[index + 1] == 10 && bytes[index + 2] == 13 && bytes[index + 3] == 10 {
        return index
    }
    return nil
}

/// The sum of a metric's samples (all label sets) in a Prometheus text exposition, truncated to an integer.
func sumOfMetric(_ exposition: String, _ name: String) -> Int {
    var sum = 0.0
    for line in lines(exposition) {
        let words = line.split(whereSeparator: { $0 == " " || $0 == "\t" })
        guard let first = words.first, first == name || first.hasPrefix(name + "{"), let value = Double(words.last!)
        else { continue }
        sum += value
    }
    return Int(sum)
}

/// A progress line on the console.
func say(_ text: String) { printLine("bench-guest: \(text)") }
