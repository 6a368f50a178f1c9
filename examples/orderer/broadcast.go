package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"sort"
	"time"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func runBroadcast(ctx context.Context, args []string, out io.Writer) error {
	var c clientFlags
	var count, size int
	fs := newFlagSet("broadcast", "--orderer HOST:PORT --channel NAME --signer MSPDIR --signer-mspid MSPID [-n 1000] [--size 256]")
	c.register(fs)
	fs.IntVar(&count, "n", 1000, "number of envelopes to send")
	fs.IntVar(&size, "size", 256, "bytes of random data per envelope")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	signer, conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	res, err := broadcast(ctx, ab.NewAtomicBroadcastClient(conn), count, func(int) (*cb.Envelope, error) {
		data := make([]byte, size)
		rand.Read(data)
		return protoutil.NewSignedEnvelopeWithTLSBinding(cb.HeaderType_ENDORSER_TRANSACTION, c.channel, data, signer, c.certHash)
	})
	res.print(out)
	return err
}

// broadcastResult counts the answers of a Broadcast stream.
type broadcastResult struct {
	statuses map[cb.Status]int
	infos    map[cb.Status]string // one example per status
	elapsed  time.Duration
	sent     int
}

func (r broadcastResult) print(w io.Writer) {
	var keys []int
	for st := range r.statuses {
		keys = append(keys, int(st))
	}
	sort.Ints(keys)
	total := 0
	for _, k := range keys {
		st := cb.Status(k)
		total += r.statuses[st]
		fmt.Fprintf(w, "%-26s %d", st, r.statuses[st])
		if info := r.infos[st]; info != "" {
			fmt.Fprintf(w, "\t(%s)", info)
		}
		fmt.Fprintln(w)
	}
	secs := r.elapsed.Seconds()
	if secs > 0 {
		fmt.Fprintf(w, "%d sent, %d answered in %v: %.0f envelopes/s\n", r.sent, total, r.elapsed.Round(time.Millisecond), float64(total)/secs)
	}
}

// broadcast sends count envelopes made by next on one stream, reading the
// answers while it sends, and counts them by status.
func broadcast(ctx context.Context, client ab.AtomicBroadcastClient, count int, next func(i int) (*cb.Envelope, error)) (broadcastResult, error) {
	res := broadcastResult{statuses: make(map[cb.Status]int), infos: make(map[cb.Status]string)}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := client.Broadcast(ctx)
	if err != nil {
		return res, err
	}
	start := time.Now()
	recvDone := make(chan error, 1)
	go func() {
		for i := 0; i < count; i++ {
			r, err := stream.Recv()
			if err != nil {
				recvDone <- fmt.Errorf("after %d answers: %w", i, err)
				return
			}
			res.statuses[r.GetStatus()]++
			if r.GetInfo() != "" && res.infos[r.GetStatus()] == "" {
				res.infos[r.GetStatus()] = r.GetInfo()
			}
		}
		recvDone <- nil
	}()
	var sendErr error
	for i := 0; i < count; i++ {
		env, err := next(i)
		if err != nil {
			sendErr = err
			break
		}
		if err := stream.Send(env); err != nil {
			sendErr = err // the receiver reports why
			break
		}
		res.sent++
	}
	if sendErr != nil {
		cancel()
	}
	err = <-recvDone
	stream.CloseSend()
	res.elapsed = time.Since(start)
	if sendErr != nil && !errors.Is(sendErr, io.EOF) {
		return res, sendErr
	}
	return res, err
}
