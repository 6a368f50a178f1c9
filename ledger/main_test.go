package ledger

import (
	"fmt"
	"io"
	"log/slog"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// nextBlock returns the block that follows prev (genesis when prev is nil),
// carrying the given envelopes.
func nextBlock(prev *cb.Block, envs ...string) *cb.Block {
	data := make([][]byte, len(envs))
	for i, e := range envs {
		data[i] = []byte(e)
	}
	if prev == nil {
		return protoutil.NewBlock(0, nil, data)
	}
	return protoutil.NewBlock(prev.Header.Number+1, protoutil.HeaderHash(prev.Header), data)
}

// makeChain returns n chained blocks, 0 to n-1.
func makeChain(n int) []*cb.Block {
	blocks := make([]*cb.Block, n)
	var prev *cb.Block
	for i := range blocks {
		prev = nextBlock(prev, fmt.Sprintf("tx-%d-a", i), fmt.Sprintf("tx-%d-bb", i))
		blocks[i] = prev
	}
	return blocks
}

func appendAll(t testing.TB, w Writer, blocks []*cb.Block) {
	t.Helper()
	for _, b := range blocks {
		require.NoError(t, w.Append(b))
	}
}

func requireBlock(t testing.TB, want, got *cb.Block) {
	t.Helper()
	require.True(t, proto.Equal(want, got), "block %d differs:\nwant %v\ngot  %v", want.GetHeader().GetNumber(), want, got)
}

func requireChain(t testing.TB, want []*cb.Block, r Reader) {
	t.Helper()
	require.Equal(t, uint64(len(want)), r.Height())
	for i, b := range want {
		got, err := r.Block(uint64(i))
		require.NoError(t, err)
		requireBlock(t, b, got)
	}
}

func quietLogger() *slog.Logger { return slog.New(slog.NewTextHandler(io.Discard, nil)) }
