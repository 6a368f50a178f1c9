package consensus

import (
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// stallHook sets the stall timeout (WithStallTimeout) on each connection
// the Kafka client opens, whatever dialled it: franz-go's dialer, a TLS
// dialer, or one given with WithKgoOpts.
type stallHook struct {
	timeout time.Duration
	log     *slog.Logger
}

var _ kgo.HookBrokerConnect = stallHook{}

func (h stallHook) OnBrokerConnect(meta kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	if err != nil || h.timeout == 0 {
		return
	}
	if err := setStallTimeout(conn, h.timeout); err != nil {
		h.log.Warn("cannot set the stall timeout of a connection to a broker; it waits on the system's own",
			"broker", net.JoinHostPort(meta.Host, strconv.Itoa(int(meta.Port))), "err", err)
	}
}
