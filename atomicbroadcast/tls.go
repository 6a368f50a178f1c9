package atomicbroadcast

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"

	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/peer"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// Client authentication at the transport: mutual TLS with the channels'
// organisations' TLS CAs, and Fabric's binding of requests to the client's
// TLS certificate.

// ErrTLSBinding reports a request that is not bound to the TLS certificate
// of the connection it came on (see WithTLSBinding): BAD_REQUEST, as
// Fabric's Deliver answers.
var ErrTLSBinding = errors.New("atomicbroadcast: request not bound to the client's TLS certificate")

// TLSBinding says which requests must carry, in their channel header's
// tls_cert_hash, the SHA-256 of the DER of the TLS client certificate of
// their connection (CertHash), as Fabric's clients bind their requests
// under mutual TLS. A request that does not, or that comes on a connection
// without a client certificate, is refused with ErrTLSBinding. It proves
// that whoever signed the request also holds the TLS key, so that a signed
// request captured elsewhere cannot be replayed on another connection.
type TLSBinding int

const (
	// BindNone checks no binding, the default.
	BindNone TLSBinding = iota
	// BindDeliver checks Deliver requests, as Fabric's orderer does when
	// it requires client certificates.
	BindDeliver
	// BindAll checks Deliver requests and Broadcast envelopes. Fabric's
	// orderer does not check Broadcast, and its peer CLI's config updates
	// carry no hash: they are refused.
	BindAll
)

// String returns "none", "deliver" or "all".
func (b TLSBinding) String() string {
	switch b {
	case BindNone:
		return "none"
	case BindDeliver:
		return "deliver"
	case BindAll:
		return "all"
	default:
		return "TLSBinding(" + strconv.Itoa(int(b)) + ")"
	}
}

// ParseTLSBinding parses "none", "deliver" or "all".
func ParseTLSBinding(s string) (TLSBinding, error) {
	for _, b := range []TLSBinding{BindNone, BindDeliver, BindAll} {
		if strings.EqualFold(s, b.String()) {
			return b, nil
		}
	}
	return 0, fmt.Errorf("TLS binding %q: want none, deliver or all", s)
}

// CertHash returns the SHA-256 of a certificate's DER: what a client puts
// in its requests' tls_cert_hash to bind them to its TLS certificate.
func CertHash(der []byte) []byte {
	h := sha256.Sum256(der)
	return h[:]
}

// clientCertHash returns the CertHash of the TLS client certificate of the
// stream of ctx, or nil when there is none (Fabric's
// ExtractCertificateHashFromContext).
func clientCertHash(ctx context.Context) []byte {
	p, ok := peer.FromContext(ctx)
	if !ok {
		return nil
	}
	info, ok := p.AuthInfo.(credentials.TLSInfo)
	if !ok || len(info.State.PeerCertificates) == 0 {
		return nil
	}
	return CertHash(info.State.PeerCertificates[0].Raw)
}

// checkBinding checks that chdr is bound to the TLS client certificate of
// the stream of ctx.
func checkBinding(ctx context.Context, chdr *cb.ChannelHeader) error {
	claimed := chdr.GetTlsCertHash()
	if len(claimed) == 0 {
		return fmt.Errorf("%w: the channel header has no tls_cert_hash", ErrTLSBinding)
	}
	actual := clientCertHash(ctx)
	if actual == nil {
		return fmt.Errorf("%w: the connection has no TLS client certificate", ErrTLSBinding)
	}
	if !bytes.Equal(claimed, actual) {
		return fmt.Errorf("%w: tls_cert_hash %x, the client certificate's is %x", ErrTLSBinding, claimed, actual)
	}
	return nil
}

// mspManaged is what a channel configuration that holds MSPs offers:
// consensus.BundleConfig and consensus.FabricConfig do.
type mspManaged interface {
	MSPManager() *msp.Manager
}

// ClientCAs returns the TLS CAs of the organisations of the channels'
// configurations in force: the TLS root and intermediate certificates of
// their MSPs (tls_root_certs, tls_intermediate_certs), as Fabric's orderer
// trusts its channels' organisations for client authentication. A
// configuration without MSPs (that does not have MSPManager) adds none.
func ClientCAs(channels map[string]Channel) []*x509.Certificate {
	var out []*x509.Certificate
	seen := make(map[string]bool)
	for _, ch := range channels {
		if ch.Chain == nil {
			continue
		}
		m, ok := ch.Chain.Config().(mspManaged)
		if !ok || m.MSPManager() == nil {
			continue
		}
		mgr := m.MSPManager()
		for _, id := range mgr.MSPIDs() {
			o, ok := mgr.MSP(id)
			if !ok {
				continue
			}
			cfg := o.Config()
			for _, p := range slices.Concat(cfg.GetTlsRootCerts(), cfg.GetTlsIntermediateCerts()) {
				for _, c := range parsePEMCerts(p) {
					if !seen[string(c.Raw)] {
						seen[string(c.Raw)] = true
						out = append(out, c)
					}
				}
			}
		}
	}
	return out
}

// parsePEMCerts returns the certificates of PEM data, skipping what does
// not parse (an MSP has checked its own).
func parsePEMCerts(b []byte) []*x509.Certificate {
	var out []*x509.Certificate
	for {
		var block *pem.Block
		block, b = pem.Decode(b)
		if block == nil {
			return out
		}
		if c, err := x509.ParseCertificate(block.Bytes); err == nil && block.Type == "CERTIFICATE" {
			out = append(out, c)
		}
	}
}

// MutualTLS returns a copy of base (a server's tls.Config, with its
// certificate) that requires a client certificate issued by a TLS CA of an
// organisation of the channels' configurations in force (ClientCAs), or
// by one of extra. The CAs are read again at each handshake when a
// channel's configuration has changed, so that an organisation added by a
// configuration update may connect, and one removed may not.
func MutualTLS(base *tls.Config, channels map[string]Channel, extra ...*x509.Certificate) *tls.Config {
	if base == nil {
		base = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	own := make(map[string]Channel, len(channels))
	for id, ch := range channels {
		own[id] = ch
	}
	cas := &caCache{channels: own, extra: slices.Clone(extra)}
	cfg := base.Clone()
	cfg.ClientAuth = tls.RequireAndVerifyClientCert
	cfg.ClientCAs = cas.pool()
	cfg.GetConfigForClient = func(*tls.ClientHelloInfo) (*tls.Config, error) {
		c := base.Clone()
		c.ClientAuth = tls.RequireAndVerifyClientCert
		c.ClientCAs = cas.pool()
		return c, nil
	}
	return cfg
}

// caCache holds the pool of ClientCAs for the configuration sequences it
// was computed at.
type caCache struct {
	channels map[string]Channel
	extra    []*x509.Certificate
	mu       sync.Mutex
	key      string
	cached   *x509.CertPool
}

// pool returns the client CAs, computed again when a channel's
// configuration sequence has changed.
func (c *caCache) pool() *x509.CertPool {
	var key strings.Builder
	for _, id := range sortedKeys(c.channels) {
		if ch := c.channels[id].Chain; ch != nil {
			if cfg := ch.Config(); cfg != nil {
				fmt.Fprintf(&key, "%s=%d;", id, cfg.Sequence())
			}
		}
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.cached != nil && c.key == key.String() {
		return c.cached
	}
	pool := x509.NewCertPool()
	for _, cert := range append(ClientCAs(c.channels), c.extra...) {
		pool.AddCert(cert)
	}
	c.key, c.cached = key.String(), pool
	return pool
}

func sortedKeys(m map[string]Channel) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}
