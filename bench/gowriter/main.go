// Command gowriter replays a captured message stream through segmentio/kafka-go configured
// as the reference control system's event writer is (one kafka.Writer per topic, Balancer
// LeastBytes, the library's default batching: BatchSize 100, BatchTimeout 1 s; each event
// written by its own goroutine with a synchronous WriteMessages, no key), and prints one JSON
// line of figures. The reference starts a goroutine per event without a bound; here at most
// -inflight (default 100 000, about 800 MB of RSS) run at once, so that a saturated run stays
// bounded in memory. -acks none is the writer as shipped (kafka-go's default RequiredAcks);
// -acks all waits for every in-sync replica.
//
// Input (-messages): records of [uint16 topic length][topic][uint32 value length][value],
// big-endian, as bench/throughput.py writes them.
package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
)

type message struct {
	topic string
	value []byte
}

func readMessages(path string) ([]message, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []message
	for {
		var tlen uint16
		if err := binary.Read(r, binary.BigEndian, &tlen); err == io.EOF {
			return out, nil
		} else if err != nil {
			return nil, err
		}
		topic := make([]byte, tlen)
		if _, err := io.ReadFull(r, topic); err != nil {
			return nil, err
		}
		var vlen uint32
		if err := binary.Read(r, binary.BigEndian, &vlen); err != nil {
			return nil, err
		}
		value := make([]byte, vlen)
		if _, err := io.ReadFull(r, value); err != nil {
			return nil, err
		}
		out = append(out, message{string(topic), value})
	}
}

func main() {
	bootstrap := flag.String("bootstrap", "127.0.0.1:19092", "broker address")
	path := flag.String("messages", "", "captured messages (see the package doc)")
	seconds := flag.Float64("seconds", 10, "how long to keep writing")
	acks := flag.String("acks", "none", "none (as shipped) or all")
	inflight := flag.Int("inflight", 100000, "at most this many event goroutines at once (the reference has no bound)")
	flag.Parse()

	msgs, err := readMessages(*path)
	if err != nil || len(msgs) == 0 {
		fmt.Fprintf(os.Stderr, "gowriter: cannot read messages from %q: %v\n", *path, err)
		os.Exit(2)
	}
	required := kafka.RequireNone
	if *acks == "all" {
		required = kafka.RequireAll
	} else if *acks != "none" {
		fmt.Fprintf(os.Stderr, "gowriter: -acks %q: expected none or all\n", *acks)
		os.Exit(2)
	}
	writers := map[string]*kafka.Writer{}
	for _, m := range msgs {
		if _, ok := writers[m.topic]; !ok {
			writers[m.topic] = &kafka.Writer{
				Addr:                   kafka.TCP(*bootstrap),
				Topic:                  m.topic,
				Balancer:               &kafka.LeastBytes{},
				AllowAutoTopicCreation: true,
				RequiredAcks:           required,
			}
		}
	}
	var acked, failed atomic.Int64
	var wg sync.WaitGroup
	slots := make(chan struct{}, *inflight)
	write := func(m message) {
		slots <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-slots; wg.Done() }()
			if err := writers[m.topic].WriteMessages(context.Background(), kafka.Message{Value: m.value}); err != nil {
				failed.Add(1)
			} else {
				acked.Add(1)
			}
		}()
	}
	for _, m := range msgs { // warm-up: connections and metadata
		write(m)
	}
	wg.Wait()
	acked.Store(0)
	failed.Store(0)

	started := time.Now()
	deadline := started.Add(time.Duration(*seconds * float64(time.Second)))
	written := 0
	for time.Now().Before(deadline) {
		for _, m := range msgs {
			write(m)
		}
		written += len(msgs)
	}
	driven := time.Since(started).Seconds()
	wg.Wait()
	total := time.Since(started).Seconds()
	for _, w := range writers {
		w.Close()
	}
	out, _ := json.Marshal(map[string]any{
		"acks": *acks, "acknowledged": acked.Load(), "failed": failed.Load(), "written": written,
		"seconds": total, "drive_seconds": driven,
		"events_per_s": float64(acked.Load()) / total,
	})
	fmt.Println(string(out))
}
