// Times Go's influxdata/line-protocol v2 decoder (lp-v2, the decoder ClusterCockpit uses) on
// the files `LineProtocolBenchmark --dump` writes, reading every part of every point as the
// Swift benchmark does, so both run side by side on the same machine and the same bytes.
// The checksum is computed the same way as the Swift benchmark's: equal checksums mean both
// decoders decoded the same values.
//
// Usage: golineprotocol FILE PRECISION(ns|us|ms|s) [rounds]
package main

import (
	"fmt"
	"math"
	"os"
	"strconv"
	"time"

	"github.com/influxdata/line-protocol/v2/lineprotocol"
)

// decodeOnce decodes buf once; returns the checksum, points and errors.
func decodeOnce(buf []byte, precision lineprotocol.Precision) (checksum uint64, points, errors int) {
	d := lineprotocol.NewDecoderWithBytes(buf)
	for d.Next() {
		if !decodePoint(d, precision, &checksum) {
			errors++
			continue
		}
		points++
	}
	return
}

// decodePoint reads one point into the checksum; false when the line is bad.
func decodePoint(d *lineprotocol.Decoder, precision lineprotocol.Precision, checksum *uint64) bool {
	m, err := d.Measurement()
	if err != nil {
		return false
	}
	sum := uint64(len(m))
	for {
		k, v, err := d.NextTag()
		if err != nil {
			return false
		}
		if k == nil {
			break
		}
		sum += uint64(len(k) + len(v))
	}
	for {
		k, v, err := d.NextField()
		if err != nil {
			return false
		}
		if k == nil {
			break
		}
		switch v.Kind() {
		case lineprotocol.Float:
			sum += math.Float64bits(v.FloatV())
		case lineprotocol.Int:
			sum += uint64(v.IntV())
		case lineprotocol.Uint:
			sum += v.UintV()
		case lineprotocol.Bool:
			if v.BoolV() {
				sum++
			}
		case lineprotocol.String:
			sum += uint64(len(v.BytesV()))
		}
	}
	// A zero default time stands for "no timestamp", as the Swift checksum adds 0 then.
	t, err := d.Time(precision, time.Unix(0, 0))
	if err != nil {
		return false
	}
	*checksum += sum + uint64(t.UnixNano())
	return true
}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: golineprotocol FILE PRECISION(ns|us|ms|s) [rounds]")
		os.Exit(2)
	}
	precisions := map[string]lineprotocol.Precision{
		"ns": lineprotocol.Nanosecond, "us": lineprotocol.Microsecond,
		"ms": lineprotocol.Millisecond, "s": lineprotocol.Second,
	}
	precision, ok := precisions[os.Args[2]]
	if !ok {
		fmt.Fprintf(os.Stderr, "unknown precision %q\n", os.Args[2])
		os.Exit(2)
	}
	rounds := 5
	if len(os.Args) > 3 {
		if n, err := strconv.Atoi(os.Args[3]); err == nil && n > 0 {
			rounds = n
		}
	}
	buf, err := os.ReadFile(os.Args[1])
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lines := 0
	for _, c := range buf {
		if c == '\n' {
			lines++
		}
	}
	best := time.Duration(math.MaxInt64)
	var checksum uint64
	var points, errors int
	for r := 0; r < rounds; r++ {
		start := time.Now()
		checksum, points, errors = decodeOnce(buf, precision)
		if elapsed := time.Since(start); elapsed < best {
			best = elapsed
		}
	}
	s := best.Seconds()
	fmt.Printf("Go lp-v2, %s (precision %s)\n", os.Args[1], os.Args[2])
	fmt.Printf("  decoded          %d points, %d errors (checksum %d)\n", points, errors, checksum)
	fmt.Printf("  best of %d        %.2f ms\n", rounds, s*1e3)
	fmt.Printf("  throughput       %.2f MB/s, %.2f M lines/s, %.2f ns/line\n",
		float64(len(buf))/s/1e6, float64(lines)/s/1e6, s*1e9/float64(lines))
}
