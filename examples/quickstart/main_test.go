package main

import (
	"bytes"
	"context"
	"errors"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/consensustest"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func TestRunSmall(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	if err := run(ctx, []string{"-n", "300", "-clients", "4"}, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	text := out.String()

	m := regexp.MustCompile(`(?m)^\s+blocks\s+(\d+)`).FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("no blocks line in the summary:\n%s", text)
	}
	if blocks, _ := strconv.Atoi(m[1]); blocks < 2 {
		t.Errorf("blocks = %d, want the genesis block and at least one more", blocks)
	}
	if !strings.Contains(text, "300 acknowledged, 300 in blocks, 0 missing, 0 duplicated") {
		t.Errorf("envelope accounting line missing or wrong:\n%s", text)
	}
	if !strings.Contains(text, "orderer2 halted at") {
		t.Errorf("no restart in the summary:\n%s", text)
	}

	tips := regexp.MustCompile(`(?m)^\s+(orderer\d+)\s+(\d+)\s+([0-9a-f]{16})\s*$`).FindAllStringSubmatch(text, -1)
	if len(tips) != 3 {
		t.Fatalf("%d node lines in the summary, want 3:\n%s", len(tips), text)
	}
	for _, tip := range tips[1:] {
		if tip[2] != tips[0][2] || tip[3] != tips[0][3] {
			t.Errorf("%s tip %s %s, %s tip %s %s: want the same", tip[1], tip[2], tip[3], tips[0][1], tips[0][2], tips[0][3])
		}
	}
	if !strings.Contains(text, "verified:") {
		t.Errorf("no verification line:\n%s", text)
	}
}

func TestFlagValidation(t *testing.T) {
	tests := []struct {
		args []string
		want string
	}{
		{[]string{"-n", "0"}, "-n 0: need at least 1 envelope"},
		{[]string{"-nodes", "0"}, "-nodes 0: need at least 1 node"},
		{[]string{"-clients", "-3"}, "-clients -3: need at least 1 client"},
		{[]string{"-size", "-1"}, "-size -1: must be between 0"},
		{[]string{"-size", "100000000"}, "-size 100000000: must be between 0"},
		{[]string{"-batch-timeout", "0s"}, "-batch-timeout 0s: must be positive"},
		{[]string{"-max-message-count", "0"}, "-max-message-count 0: must be between 1"},
		{[]string{"-n", "ten"}, `invalid value "ten" for flag -n`},
		{[]string{"-bogus"}, "flag provided but not defined: -bogus"},
		{[]string{"extra"}, `unexpected arguments ["extra"]`},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			var out bytes.Buffer
			err := run(context.Background(), tt.args, &out)
			if err == nil || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("run(%q) = %v, want an error containing %q", tt.args, err, tt.want)
			}
			if !errors.Is(err, errUsage) {
				t.Errorf("run(%q) = %v, want errUsage", tt.args, err)
			}
		})
	}

	t.Run("several at once", func(t *testing.T) {
		err := run(context.Background(), []string{"-n", "0", "-nodes", "0"}, new(bytes.Buffer))
		if err == nil || !strings.Contains(err.Error(), "-n 0") || !strings.Contains(err.Error(), "-nodes 0") {
			t.Fatalf("got %v, want both errors", err)
		}
	})
	t.Run("help", func(t *testing.T) {
		var out bytes.Buffer
		if err := run(context.Background(), []string{"-h"}, &out); err != nil {
			t.Fatalf("run(-h) = %v, want nil", err)
		}
		if !strings.Contains(out.String(), "-max-message-count") {
			t.Errorf("usage does not list the flags:\n%s", out.String())
		}
	})
}

// chainOf returns a memory ledger holding genesis and one block per batch.
func chainOf(t *testing.T, genesis *cb.Block, batches ...[]*cb.Envelope) *ledger.Memory {
	t.Helper()
	l := ledger.NewMemory()
	if err := l.Append(genesis); err != nil {
		t.Fatal(err)
	}
	prev := genesis
	for i, batch := range batches {
		data := make([][]byte, len(batch))
		for j, env := range batch {
			data[j] = protoutil.MarshalOrPanic(env)
		}
		b := protoutil.NewBlock(uint64(i+1), protoutil.HeaderHash(prev.GetHeader()), data)
		if err := l.Append(b); err != nil {
			t.Fatal(err)
		}
		prev = b
	}
	return l
}

func TestVerify(t *testing.T) {
	ca := testutil.NewCA(t, "Org1MSP")
	client := ca.Issue("client")
	genesis := testutil.GenesisBlock(t, testutil.ChannelConfig("ch", []*testutil.CA{ca}))
	var envs []*cb.Envelope
	sent := sentEnvelopes{}
	for i := range 4 {
		env := testutil.Envelope(client, "ch", cb.HeaderType_ENDORSER_TRANSACTION, []byte{byte(i)})
		h, err := protoutil.EnvelopeHeaders(env)
		if err != nil {
			t.Fatal(err)
		}
		envs = append(envs, env)
		sent[h.ChannelHeader.GetTxId()] = true
	}
	names := []string{"a", "b"}
	e := envs

	t.Run("identical", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], e[2:])
		b := chainOf(t, genesis, e[:2], e[2:])
		rep, err := verify([]ledger.Reader{a, b}, names, sent)
		if err != nil {
			t.Fatal(err)
		}
		if rep.height != 3 || rep.envelopes != 4 || rep.acked != 4 {
			t.Errorf("report %+v, want height 3 and 4 envelopes", rep)
		}
		if !bytes.Equal(rep.tips[0].hash, rep.tips[1].hash) {
			t.Errorf("tips %x and %x differ", rep.tips[0].hash, rep.tips[1].hash)
		}
	})
	t.Run("tampered data", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], e[2:])
		b := chainOf(t, genesis, []*cb.Envelope{e[1], e[0]}, e[2:])
		_, err := verify([]ledger.Reader{a, b}, names, sent)
		if err == nil || !strings.Contains(err.Error(), "ledgers of a and b: block 1 differs") {
			t.Fatalf("got %v, want the ledgers to differ at block 1", err)
		}
	})
	t.Run("different heights", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], e[2:])
		b := chainOf(t, genesis, e[:2])
		_, err := verify([]ledger.Reader{a, b}, names, sent)
		if err == nil || !strings.Contains(err.Error(), "a has 3 blocks, b has 2") {
			t.Fatalf("got %v, want different heights", err)
		}
	})
	t.Run("missing and duplicated", func(t *testing.T) {
		a := chainOf(t, genesis, e[:2], []*cb.Envelope{e[1], e[2]})
		_, err := verify([]ledger.Reader{a}, names[:1], sent)
		if err == nil || !strings.Contains(err.Error(), "1 acknowledged envelopes missing") || !strings.Contains(err.Error(), "1 envelopes in more than one place") {
			t.Fatalf("got %v, want one missing and one duplicated", err)
		}
	})
	t.Run("unknown", func(t *testing.T) {
		stranger := testutil.Envelope(client, "ch", cb.HeaderType_ENDORSER_TRANSACTION, []byte("?"))
		a := chainOf(t, genesis, e, []*cb.Envelope{stranger})
		_, err := verify([]ledger.Reader{a}, names[:1], sent)
		if err == nil || !strings.Contains(err.Error(), "that no client sent") {
			t.Fatalf("got %v, want an unknown transaction", err)
		}
	})
	t.Run("not acknowledged may be missing", func(t *testing.T) {
		unacked := sentEnvelopes{}
		for id := range sent {
			unacked[id] = true
		}
		stray := testutil.Envelope(client, "ch", cb.HeaderType_ENDORSER_TRANSACTION, []byte("lost"))
		h, _ := protoutil.EnvelopeHeaders(stray)
		unacked[h.ChannelHeader.GetTxId()] = false
		a := chainOf(t, genesis, e)
		rep, err := verify([]ledger.Reader{a}, names[:1], unacked)
		if err != nil {
			t.Fatal(err)
		}
		if rep.unacked != 1 || rep.unackedIn != 0 {
			t.Errorf("report %+v, want one unacknowledged envelope, not in a block", rep)
		}
	})
}

func TestRunExistingKafka(t *testing.T) {
	k, err := consensustest.StartKafka()
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out bytes.Buffer
	args := []string{"-n", "50", "-clients", "2", "-nodes", "2", "-restart=false", "-brokers", strings.Join(k.Addrs(), ","), "-data", t.TempDir()}
	if err := run(ctx, args, &out); err != nil {
		t.Fatalf("run: %v\noutput:\n%s", err, out.String())
	}
	if !strings.Contains(out.String(), "50 acknowledged, 50 in blocks, 0 missing, 0 duplicated") {
		t.Errorf("envelope accounting line missing or wrong:\n%s", out.String())
	}
}
