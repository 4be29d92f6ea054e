// Command progressflood is the step of scripts/progress-flood.sh: it prints
// ::progress lines at a fixed rate, one write(2) per line, optionally a
// ::data line every N lines, and writes its achieved rate to a file.
package main

import (
	"flag"
	"fmt"
	"os"
	"strconv"
	"time"
)

func main() {
	rate := flag.Int("rate", 10000, "lines a second")
	dur := flag.Duration("duration", 20*time.Second, "how long")
	dataEvery := flag.Int("data-every", 0, "every Nth line is a ::data line (0: none)")
	report := flag.String("report", "", "file to write the achieved rate to")
	flag.Parse()
	total := int(float64(*rate) * dur.Seconds())
	const batch = 100 // lines per 10 ms tick at 10,000/s
	tick := time.Second * batch / time.Duration(*rate)
	start := time.Now()
	var progress, data int
	buf := make([]byte, 0, 64)
	for i := 1; i <= total; i++ {
		buf = buf[:0]
		if *dataEvery > 0 && i%*dataEvery == 0 {
			buf = append(buf, `::data {"n": `...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, "}\n"...)
			data++
		} else {
			buf = append(buf, "::progress "...)
			buf = strconv.AppendInt(buf, int64(i), 10)
			buf = append(buf, '/')
			buf = strconv.AppendInt(buf, int64(total), 10)
			buf = append(buf, '\n')
			progress++
		}
		if _, err := os.Stdout.Write(buf); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if i%batch == 0 { // pace: the i-th line is due at i/rate seconds
			if d := time.Until(start.Add(time.Duration(i/batch) * tick)); d > 0 {
				time.Sleep(d)
			}
		}
	}
	el := time.Since(start)
	msg := fmt.Sprintf("lines %d progress %d data %d elapsed %.3f s rate %.0f/s\n",
		total, progress, data, el.Seconds(), float64(total)/el.Seconds())
	if *report != "" {
		_ = os.WriteFile(*report, []byte(msg), 0o644)
	}
}
