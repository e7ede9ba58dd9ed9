import Foundation
import Logging

/// Log lines as JSON objects, one per line on standard error, for log shippers (kube-proxy's
/// `--logging-format json`).
///
/// Each line has klog's JSON keys where they apply (`ts`, seconds since 1970; `msg`; `v`, the verbosity: 0 for
/// info and above, 4 for debug, 5 for trace) plus `level`, `logger` and every metadata field, as strings.
package struct JSONLogHandler: LogHandler {
    package var metadata: Logger.Metadata = [:]
    package var logLevel: Logger.Level
    private let label: String

    package init(label: String, level: Logger.Level) {
        self.label = label
        self.logLevel = level
    }

    package subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    package func log(event: LogEvent) {
        FileHandle.standardError.write(Data((line(event, at: Date()) + "\n").utf8))
    }

    /// One event as a JSON object.
    func line(_ event: LogEvent, at date: Date) -> String {
        var fields: [String: Any] = [:]
        for (key, value) in metadata.merging(event.metadata ?? [:], uniquingKeysWith: { $1 }) {
            fields[key] = "\(value)"
        }
        fields["ts"] = date.timeIntervalSince1970
        fields["msg"] = "\(event.message)"
        fields["level"] = event.level.rawValue
        fields["logger"] = label
        fields["v"] = event.level == .trace ? 5 : event.level == .debug ? 4 : 0
        guard let data = try? JSONSerialization.data(withJSONObject: fields, options: [.sortedKeys]) else {
            return #"{"msg":"unencodable log message"}"#
        }
        return String(decoding: data, as: UTF8.self)
    }
}
