package main

import (
	"context"
	"fmt"
	"io"
	"strconv"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func runDeliver(ctx context.Context, args []string, out io.Writer) error {
	var c clientFlags
	var start, stop string
	var failIfNotReady, bestEffort bool
	fs := newFlagSet("deliver", "--orderer HOST:PORT --channel NAME --signer MSPDIR --signer-mspid MSPID [--start oldest] [--stop newest]")
	c.register(fs)
	fs.StringVar(&start, "start", "oldest", "first block: oldest, newest, next or a block number")
	fs.StringVar(&stop, "stop", "newest", "last block: oldest, newest, next or a block number (a large number follows the chain)")
	fs.BoolVar(&failIfNotReady, "fail-if-not-ready", false, "answer NOT_FOUND instead of waiting for blocks not yet written")
	fs.BoolVar(&bestEffort, "best-effort", false, "ask for the blocks written even while the node's chain cannot consume from Kafka or has halted (BEST_EFFORT; by default the node answers SERVICE_UNAVAILABLE then)")
	if err := parseFlags(fs, args); err != nil {
		return err
	}
	if err := c.check(); err != nil {
		return err
	}
	startPos, err := parseSeekPosition(start)
	if err != nil {
		return fmt.Errorf("--start: %w", err)
	}
	stopPos, err := parseSeekPosition(stop)
	if err != nil {
		return fmt.Errorf("--stop: %w", err)
	}
	info := &ab.SeekInfo{Start: startPos, Stop: stopPos}
	if failIfNotReady {
		info.Behavior = ab.SeekInfo_FAIL_IF_NOT_READY
	}
	if bestEffort {
		info.ErrorResponse = ab.SeekInfo_BEST_EFFORT
	}
	signer, conn, err := c.connect()
	if err != nil {
		return err
	}
	defer conn.Close()
	env, err := atomicbroadcast.NewSeekEnvelopeWithTLSBinding(signer, c.channel, info, c.certHash)
	if err != nil {
		return err
	}
	st, err := atomicbroadcast.ReadBlocks(ctx, ab.NewAtomicBroadcastClient(conn), env, func(b *cb.Block) error {
		fmt.Fprintf(out, "block %d: %d transactions, header hash %x\n",
			b.GetHeader().GetNumber(), len(b.GetData().GetData()), protoutil.HeaderHash(b.GetHeader()))
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "status %s\n", st)
	if st != cb.Status_SUCCESS {
		return fmt.Errorf("deliver ended with status %s", st)
	}
	return nil
}

// parseSeekPosition parses oldest, newest, next or a block number.
func parseSeekPosition(s string) (*ab.SeekPosition, error) {
	switch s {
	case "oldest":
		return seekOldest(), nil
	case "newest":
		return seekNewest(), nil
	case "next":
		return &ab.SeekPosition{Type: &ab.SeekPosition_NextCommit{NextCommit: &ab.SeekNextCommit{}}}, nil
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return nil, fmt.Errorf("%q is not oldest, newest, next or a block number", s)
	}
	return seekSpecified(n), nil
}

// Seek positions.
func seekOldest() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Oldest{Oldest: &ab.SeekOldest{}}}
}

func seekNewest() *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Newest{Newest: &ab.SeekNewest{}}}
}

func seekSpecified(n uint64) *ab.SeekPosition {
	return &ab.SeekPosition{Type: &ab.SeekPosition_Specified{Specified: &ab.SeekSpecified{Number: n}}}
}
