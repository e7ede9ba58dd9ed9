// The fake Kubernetes API server of scripts/bench: serves the bench's generated Services and EndpointSlices over
// HTTPS as a kube-apiserver does (compact JSON, pages, watches), and sends scripted EndpointSlice changes when the
// bench's guest script asks for them on a plain-HTTP control port. See APIHandler for the requests.
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import NIOSSL

let usage = """
    usage: bench-api-server --input LIST.json --cert PEM --key PEM --event-log FILE
                            [--port 6443] [--control-port 6444] [--token TOKEN]
                            [--node-ip 192.0.2.10] [--pod-cidr 10.255.255.0/24]

    Serves LIST.json's Services and EndpointSlices at https://127.0.0.1:PORT and the control requests at
    http://127.0.0.1:CONTROL-PORT. Writes one line per event to FILE: its resource version, the wall-clock time
    just before it was written to the watch (seconds since 1970; - when no watch was open), the slice, the address
    replaced and the new one.
    """

/// The command line's `--name value` pairs over the defaults; exits with the usage on anything else.
func parseOptions() -> [String: String] {
    var options = [
        "--port": "6443", "--control-port": "6444", "--node-ip": "192.0.2.10", "--pod-cidr": "10.255.255.0/24",
    ]
    var arguments = CommandLine.arguments.dropFirst()
    while let name = arguments.popFirst() {
        guard name.hasPrefix("--"), name != "--help", let value = arguments.popFirst() else {
            print(usage)
            exit(name == "--help" ? 0 : 2)
        }
        options[name] = value
    }
    return options
}

func run(_ options: [String: String]) throws {
    func option(_ name: String) throws -> String {
        guard let value = options[name] else { throw Problem("\(name) is needed\n\(usage)") }
        return value
    }
    let cluster = try Cluster(
        reading: option("--input"), nodeIP: option("--node-ip"), podCIDR: option("--pod-cidr"))
    let logPath = try option("--event-log")
    guard FileManager.default.createFile(atPath: logPath, contents: nil),
        let eventLog = FileHandle(forWritingAtPath: logPath)
    else { throw Problem("cannot write \(logPath)") }
    let tls = try NIOSSLContext(
        configuration: .makeServerConfiguration(
            certificateChain: NIOSSLCertificate.fromPEMFile(option("--cert")).map { .certificate($0) },
            privateKey: .privateKey(try NIOSSLPrivateKey(file: option("--key"), format: .pem))))
    // One thread: it shares the VM's two CPUs with the daemon it measures, and the state needs no locks.
    let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    let api = BenchAPI(cluster: cluster, eventLog: eventLog, loop: group.next())
    let token = options["--token"]
    func serve(port: String, tls: NIOSSLContext?) throws -> any Channel {
        try ServerBootstrap(group: group)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    if let tls { try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: tls)) }
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline()
                    try channel.pipeline.syncOperations.addHandler(
                        APIHandler(api: api, token: tls == nil ? nil : token))
                }
            }
            .bind(host: "127.0.0.1", port: Int(port) ?? 0).wait()
    }
    let (port, controlPort) = (try option("--port"), try option("--control-port"))
    let server = try serve(port: port, tls: tls)
    _ = try serve(port: controlPort, tls: nil)
    let summary = try api.loop.submit { api.status }.wait()
    FileHandle.standardError.write(
        Data("bench-api-server: serving on port \(port), control port \(controlPort); \(summary)".utf8))
    try server.closeFuture.wait()
}

do {
    try run(parseOptions())
} catch {
    FileHandle.standardError.write(Data("bench-api-server: \(error)\n".utf8))
    exit(1)
}
