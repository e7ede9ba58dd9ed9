/// A duration written as kube-proxy (Go's `time.ParseDuration`) writes it: `500ms`, `2s`, `1m30s`, `1.5h`.
package struct GoDuration: Sendable, Hashable, Comparable, CustomStringConvertible {
    package let duration: Duration

    package init(_ duration: Duration) { self.duration = duration }

    /// Parses one or more `<number><unit>` parts (units `ns`, `us`, `µs`, `ms`, `s`, `m`, `h`); `0` alone is zero.
    package init?(_ text: String) {
        if text == "0" {
            self.init(.zero)
            return
        }
        let units: [(String, Double)] = [
            ("ns", 1e-9), ("us", 1e-6), ("µs", 1e-6), ("μs", 1e-6), ("ms", 1e-3), ("s", 1), ("m", 60), ("h", 3600),
        ]
        var rest = Substring(text)
        var seconds = 0.0
        guard !rest.isEmpty else { return nil }
        while !rest.isEmpty {
            let number = rest.prefix { $0.isNumber || $0 == "." }
            guard !number.isEmpty, let value = Double(number) else { return nil }
            rest = rest.dropFirst(number.count)
            let unitText = rest.prefix { !$0.isNumber && $0 != "." }
            // Longest unit first, so "ms" is not read as "m" followed by garbage.
            guard let unit = units.first(where: { $0.0 == unitText }) else { return nil }
            rest = rest.dropFirst(unitText.count)
            seconds += value * unit.1
        }
        self.init(.nanoseconds(Int64((seconds * 1e9).rounded())))
    }

    package var seconds: Double {
        Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
    }

    /// Go's spelling: `1m30s`, `500ms`, `0s`.
    package var description: String {
        let nanoseconds = Int64((seconds * 1e9).rounded())
        if nanoseconds == 0 { return "0s" }
        if nanoseconds < 1_000_000_000 {
            return nanoseconds % 1_000_000 == 0 ? "\(nanoseconds / 1_000_000)ms" : "\(Double(nanoseconds) / 1e6)ms"
        }
        var remaining = seconds
        var text = ""
        let hours = Int(remaining / 3600)
        if hours > 0 {
            text += "\(hours)h"
            remaining -= Double(hours) * 3600
        }
        let minutes = Int(remaining / 60)
        if minutes > 0 || (hours > 0 && remaining > 0) {
            text += "\(minutes)m"
            remaining -= Double(minutes) * 60
        }
        if remaining > 0 || text.isEmpty {
            let whole = remaining.rounded()
            text += abs(remaining - whole) < 1e-9 ? "\(Int(whole))s" : "\(remaining)s"
        }
        return text
    }
}

extension GoDuration {
    package static func < (lhs: GoDuration, rhs: GoDuration) -> Bool { lhs.duration < rhs.duration }

    package static func seconds(_ value: Int64) -> GoDuration { GoDuration(.seconds(value)) }

    package static let zero = GoDuration(.zero)
}
