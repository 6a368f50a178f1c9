package coretest_test

import (
	"encoding/binary"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/consensus/coretest"
	"github.com/kafkaconsensus/kafkaconsensus/consensus/plainconfig"
)

// fuzzRecords encodes records as the fuzz input: each one preceded by its
// length as a uvarint.
func fuzzRecords(recs ...[]byte) []byte {
	var out []byte
	for _, r := range recs {
		out = binary.AppendUvarint(out, uint64(len(r)))
		out = append(out, r...)
	}
	return out
}

// FuzzLogRecords appends the records its input encodes (at most 64, as
// fuzzRecords writes them) to the log of 2 nodes, the second restarted
// halfway, then fires every timer and delivers what the nodes produce.
// Whatever the records, no core panics, the nodes cut identical blocks,
// and a core restarted from any block cuts the same blocks again.
func FuzzLogRecords(f *testing.F) {
	update := func(max uint32) []byte {
		next := coretest.OpenConfig(2, time.Second).Next()
		next.BatchSize.MaxMessageCount = max
		env, err := plainconfig.UpdateEnvelope(next, nil)
		require.NoError(f, err)
		return coretest.Config(env, 0)
	}
	a, b := coretest.Envelope("a"), coretest.Envelope("b")
	f.Add(fuzzRecords(coretest.Normal(a, 0), coretest.Normal(b, 0), coretest.TimeToCut(1)))
	f.Add(fuzzRecords(coretest.Connect(), update(3), coretest.Normal(a, 0), coretest.Resubmitted(a, 1, 2), coretest.Resubmitted(a, 1, 2)))
	f.Add(fuzzRecords(coretest.Normal(a, 0), update(1), coretest.Normal(b, 0), coretest.TimeToCut(2), coretest.Garbage()))
	f.Add(fuzzRecords(coretest.StrangerRecords()...))
	f.Fuzz(func(t *testing.T, in []byte) {
		var recs [][]byte
		for len(in) > 0 && len(recs) < 64 {
			n, k := binary.Uvarint(in)
			if k <= 0 || n > uint64(len(in)-k) {
				break
			}
			recs = append(recs, in[k:k+int(n)])
			in = in[k+int(n):]
		}
		l, err := coretest.NewLog(2, coretest.OpenConfig(2, time.Second))
		require.NoError(t, err)
		for i, r := range recs {
			l.Append(r)
			if i == len(recs)/2 {
				require.NoError(t, l.Restart(1))
			}
		}
		require.NoError(t, l.Settle())
		require.NoError(t, l.CheckIdentical())
		require.NoError(t, l.CheckRestarts())
	})
}
