import Foundation
import Histogram

/// One measured quantity against one server: a latency distribution in microseconds or
/// a throughput, with the per-repeat figures that show how stable it is.
struct Measurement: Codable {
    var name: String
    /// Background connections running pipelined GET/SET meanwhile.
    var load: Int
    var unit: String
    var samples: Int
    var p50: Double? = nil
    var p90: Double? = nil
    var p99: Double? = nil
    var p999: Double? = nil
    var max: Double? = nil
    var throughput: Double? = nil
    /// p50 (or throughput) of each repeat, and p99 of each repeat.
    var repeats: [Double] = []
    var repeatsP99: [Double] = []
    /// (percentile, microseconds) points of the whole distribution, for the chart.
    var curve: [[Double]] = []
    var note: String? = nil

    var key: String { "\(name) | load \(load)" }

    /// (max - min) / median of the per-repeat figures: the run-to-run spread.
    static func spread(_ values: [Double]) -> Double? {
        guard values.count > 1 else { return nil }
        let sorted = values.sorted()
        let median = sorted[sorted.count / 2]
        return median > 0 ? (sorted.last! - sorted.first!) / median : nil
    }

    static func latency(_ name: String, load: Int, repeats: [[UInt64]], note: String? = nil) -> Measurement {
        var all = makeHistogram()
        var perRepeat: [Double] = [], perRepeatP99: [Double] = []
        for samples in repeats {
            var h = makeHistogram()
            for s in samples { h.record(Swift.max(1, s)); all.record(Swift.max(1, s)) }
            perRepeat.append(Double(h.valueAtPercentile(50)))
            perRepeatP99.append(Double(h.valueAtPercentile(99)))
        }
        var m = Measurement(name: name, load: load, unit: "us", samples: Int(all.totalCount))
        m.p50 = Double(all.valueAtPercentile(50))
        m.p90 = Double(all.valueAtPercentile(90))
        m.p99 = Double(all.valueAtPercentile(99))
        m.p999 = Double(all.valueAtPercentile(99.9))
        m.max = Double(all.max)
        m.repeats = perRepeat
        m.repeatsP99 = perRepeatP99
        m.curve = [0, 50, 75, 90, 95, 99, 99.5, 99.9, 99.99, 100].map { [$0, Double(all.valueAtPercentile($0))] }
        m.note = note
        return m
    }
}

struct RunReport: Codable {
    var label: String
    var host: String
    var port: Int
    var shards: Int
    var date: String
    var measurements: [Measurement]
}

enum Render {
    static func format(_ v: Double?) -> String {
        guard let v else { return "-" }
        if v >= 100 { return String(Int(v.rounded())) }
        return String(Double(Int(v * 10)) / 10)
    }

    static func percent(_ v: Double?) -> String {
        guard let v else { return "-" }
        return "\(Int((v * 100).rounded()))%"
    }

    /// One run's own table, printed as it finishes.
    static func table(_ r: RunReport) -> String {
        var out = "# \(r.label) (\(r.host):\(r.port), \(r.shards) shard\(r.shards == 1 ? "" : "s"))\n"
        out += "| measurement | load | p50 us | p90 us | p99 us | p99.9 us | max us | msg/s | spread p50/p99 | samples |\n"
        out += "|---|---|---|---|---|---|---|---|---|---|\n"
        for m in r.measurements {
            let spread = m.unit == "us"
                ? "\(percent(Measurement.spread(m.repeats))) / \(percent(Measurement.spread(m.repeatsP99)))"
                : percent(Measurement.spread(m.repeats))
            out += "| \(m.name)\(m.note.map { " (\($0))" } ?? "") | \(m.load) | \(format(m.p50)) | \(format(m.p90)) | \(format(m.p99)) | \(format(m.p999)) | \(format(m.max)) | \(format(m.throughput)) | \(spread) | \(m.samples) |\n"
        }
        return out
    }

    /// Several runs side by side, as ratios against `baseline` (>1 means slower for
    /// latencies, faster for throughput, more for memory).
    static func comparison(_ runs: [RunReport], baseline: String?) -> String {
        let base = runs.first { $0.label == baseline }
        var keys: [String] = []
        for r in runs { for m in r.measurements where !keys.contains(m.key) { keys.append(m.key) } }
        var out = "| measurement | load |"
        for r in runs { out += " \(r.label) p50 | p99 | p99.9 |" }
        if base != nil { for r in runs where r.label != baseline { out += " \(r.label)/\(baseline!) p50 | p99 | p99.9 |" } }
        out += "\n|---|---|" + String(repeating: "---|---|---|", count: runs.count)
        if base != nil { out += String(repeating: "---|---|---|", count: runs.count - 1) }
        out += "\n"
        for key in keys {
            let parts = key.components(separatedBy: " | load ")
            out += "| \(parts[0]) | \(parts[1]) |"
            let found = runs.map { r in r.measurements.first { $0.key == key } }
            for m in found {
                if let m, m.unit != "us" { out += " \(format(m.throughput)) \(m.unit) | | |" }
                else { out += " \(format(m?.p50)) | \(format(m?.p99)) | \(format(m?.p999)) |" }
            }
            if let base, let b = base.measurements.first(where: { $0.key == key }) {
                for (r, m) in zip(runs, found) where r.label != baseline {
                    guard let m else { out += " - | - | - |"; continue }
                    if m.unit != "us" {
                        out += " \(ratio(m.throughput, b.throughput)) | | |"
                    } else {
                        out += " \(ratio(m.p50, b.p50)) | \(ratio(m.p99, b.p99)) | \(ratio(m.p999, b.p999)) |"
                    }
                }
            }
            out += "\n"
        }
        return out
    }

    static func ratio(_ a: Double?, _ b: Double?) -> String {
        guard let a, let b, b > 0 else { return "-" }
        return String(format2(a / b)) + "x"
    }

    static func format2(_ v: Double) -> String {
        let r = (v * 100).rounded() / 100
        var s = String(r)
        if let dot = s.firstIndex(of: "."), s.distance(from: dot, to: s.endIndex) == 2 { s += "0" }
        return s
    }

    // MARK: SVG

    /// Latency-by-percentile charts drawn as HdrHistogram plots them, one panel per
    /// latency measurement named in `panels`, one line per server: x is the percentile on
    /// the 1/(1-p) log scale (p90, p99, p99.9, p99.99 equally spaced, so the tail is not
    /// squeezed into the right edge), y is the latency on a log scale (so a difference at
    /// p50 shows as clearly as one at p99.9). Beside each panel, the p50/p99/p99.9 table.
    static func svg(_ runs: [RunReport], panels: [String]) -> String {
        let width = 900.0, panelHeight = 280.0, left = 70.0, right = 330.0, top = 30.0, bottom = 40.0
        let colors = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b"]
        let keys = panels.filter { key in runs.contains { $0.measurements.contains { $0.key == key && !$0.curve.isEmpty } } }
        var out = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(panelHeight) * max(1, keys.count))\" font-family=\"sans-serif\" font-size=\"11\">\n"
        func x(_ pct: Double) -> Double {
            let p = min(pct, 99.999)
            let decades = log10(100 / (100 - p))  // 0 at p0, 5 at p99.999
            return left + decades / 5 * (width - left - right)
        }
        for (n, key) in keys.enumerated() {
            let y0 = Double(n) * panelHeight
            // Up to p99.99: the single maximum would flatten everything else.
            let curves = runs.map { r in (r.measurements.first { $0.key == key }?.curve ?? []).filter { $0[0] <= 99.99 } }
            let values = curves.flatMap { $0.map { max($0[1], 1) } }
            // Whole decades of microseconds around the data.
            let low = pow(10, floor(log10(values.min() ?? 1))), high = pow(10, max(1, ceil(log10(values.max() ?? 10))))
            func y(_ v: Double) -> Double {
                let f = (log10(max(v, low)) - log10(low)) / (log10(high) - log10(low))
                return y0 + panelHeight - bottom - f * (panelHeight - top - bottom)
            }
            out += "<text x=\"\(left)\" y=\"\(y0 + 18)\" font-size=\"13\">\(escape(key)) (microseconds, log scale)</text>\n"
            out += "<line x1=\"\(left)\" y1=\"\(y(low))\" x2=\"\(width - right)\" y2=\"\(y(low))\" stroke=\"#444\"/>\n"
            out += "<line x1=\"\(left)\" y1=\"\(y(low))\" x2=\"\(left)\" y2=\"\(y(high))\" stroke=\"#444\"/>\n"
            for (p, label) in [(0.0, "p0"), (90, "p90"), (99, "p99"), (99.9, "p99.9"), (99.99, "p99.99")] {
                out += "<line x1=\"\(x(p))\" y1=\"\(y(low))\" x2=\"\(x(p))\" y2=\"\(y(high))\" stroke=\"#ddd\"/>\n"
                out += "<text x=\"\(x(p) - 10)\" y=\"\(y(low) + 15)\">\(label)</text>\n"
            }
            var decade = low
            while decade <= high {
                out += "<line x1=\"\(left)\" y1=\"\(y(decade))\" x2=\"\(width - right)\" y2=\"\(y(decade))\" stroke=\"#eee\"/>\n"
                out += "<text x=\"\(left - 8)\" y=\"\(y(decade) + 4)\" text-anchor=\"end\">\(format(decade))</text>\n"
                decade *= 10
            }
            let tableX = width - right + 12
            out += "<text x=\"\(tableX + 120)\" y=\"\(y0 + top + 4)\" font-weight=\"bold\">p50</text>"
            out += "<text x=\"\(tableX + 170)\" y=\"\(y0 + top + 4)\" font-weight=\"bold\">p99</text>"
            out += "<text x=\"\(tableX + 220)\" y=\"\(y0 + top + 4)\" font-weight=\"bold\">p99.9</text>\n"
            for (i, (r, c)) in zip(runs, curves).enumerated() where !c.isEmpty {
                let color = colors[i % colors.count]
                let points = c.map { "\(x($0[0])),\(y(max($0[1], 1)))" }.joined(separator: " ")
                out += "<polyline fill=\"none\" stroke=\"\(color)\" stroke-width=\"2\" points=\"\(points)\"/>\n"
                let m = r.measurements.first { $0.key == key }
                let rowY = y0 + top + 20 + 16 * Double(i)
                out += "<text x=\"\(tableX)\" y=\"\(rowY)\" fill=\"\(color)\">\(escape(r.label))</text>"
                for (dx, v) in [(120.0, m?.p50), (170, m?.p99), (220, m?.p999)] {
                    out += "<text x=\"\(tableX + dx)\" y=\"\(rowY)\">\(format(v))</text>"
                }
                out += "\n"
            }
        }
        return out + "</svg>\n"
    }

    static func escape(_ s: String) -> String {
        s.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;").replacingOccurrences(of: ">", with: "&gt;")
    }
}
