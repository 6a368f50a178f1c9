package atomicbroadcast

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	"github.com/kafkaconsensus/kafkaconsensus/consensus"
	"github.com/kafkaconsensus/kafkaconsensus/internal/testutil"
	"github.com/kafkaconsensus/kafkaconsensus/ledger"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	ab "github.com/kafkaconsensus/kafkaconsensus/protos/orderer"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// serverCert returns a TLS certificate for 127.0.0.1, self-signed, and the
// pool that trusts it.
func serverCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "orderer"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	require.NoError(t, err)
	cert, err := x509.ParseCertificate(der)
	require.NoError(t, err)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}, pool
}

// tlsClient returns a client of addr that trusts roots and presents cert,
// or no certificate when cert is nil.
func tlsClient(t *testing.T, addr string, roots *x509.CertPool, cert *msptest.TLSCert) ab.AtomicBroadcastClient {
	t.Helper()
	cfg := &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	if cert != nil {
		c, err := cert.Certificate()
		require.NoError(t, err)
		cfg.Certificates = []tls.Certificate{c}
	}
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return ab.NewAtomicBroadcastClient(conn)
}

// TestMutualTLS serves a channel of one organisation with mutual TLS
// trusting its TLS CA and binding every request: its members connect and
// are served when their requests carry their certificate's hash; a client
// of another CA, or without a certificate, is refused at the handshake,
// until a configuration update adds its organisation.
func TestMutualTLS(t *testing.T) {
	org1, org2 := testutil.NewCA(t, "Org1MSP"), testutil.NewCA(t, "Org2MSP")
	bundle := func(seq uint64, orgs ...*testutil.CA) consensus.ChannelConfig {
		cfg := testutil.ChannelConfig("ch", orgs)
		cfg.Sequence = seq
		return consensus.BundleConfig{Bundle: testutil.Bundle(t, cfg)}
	}
	ch := &recordingChain{cfg: bundle(0, org1)}
	l := ledger.NewMemory()
	appendBlocks(t, l, 1)
	channels := map[string]Channel{"ch": {Chain: ch, Ledger: l}}
	require.Equal(t, []*x509.Certificate{org1.TLSCA().Cert}, ClientCAs(channels))
	require.Empty(t, ClientCAs(map[string]Channel{"x": {Chain: newFakeChain(readableConfig{})}}), "a configuration without MSPs")

	cert, roots := serverCert(t)
	base := &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
	_, addr := serveWith(t, channels, []Option{WithTLSBinding(BindAll)},
		[]grpc.ServerOption{grpc.Creds(credentials.NewTLS(MutualTLS(base, channels)))}, nil)

	// A member signs with its identity and connects with a TLS
	// certificate of its organisation's TLS CA.
	member := org1.Issue("user1")
	issueTLS := func(ca *testutil.CA, name string) *msptest.TLSCert {
		cert, err := ca.IssueTLS(name, nil)
		require.NoError(t, err)
		return cert
	}
	memberTLS := issueTLS(org1, "user1")
	hash := CertHash(memberTLS.Cert.Raw)
	c := tlsClient(t, addr, roots, memberTLS)
	tx := func(h []byte) *cb.Envelope {
		env, err := protoutil.NewSignedEnvelopeWithTLSBinding(cb.HeaderType_ENDORSER_TRANSACTION, "ch", []byte("tx"), member, h)
		require.NoError(t, err)
		return env
	}
	seek := func(h []byte) *cb.Envelope {
		env, err := NewSeekEnvelopeWithTLSBinding(member, "ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()}, h)
		require.NoError(t, err)
		return env
	}
	other := CertHash(issueTLS(org1, "user2").Cert.Raw)
	for _, tc := range []struct {
		name string
		hash []byte
		want cb.Status
		info string
	}{
		{"bound", hash, cb.Status_SUCCESS, ""},
		{"no hash", nil, cb.Status_BAD_REQUEST, "the channel header has no tls_cert_hash"},
		{"another certificate's hash", other, cb.Status_BAD_REQUEST, "the client certificate's is"},
	} {
		r := broadcastOne(t, c, tx(tc.hash))
		require.Equal(t, tc.want, r.GetStatus(), "%s: %s", tc.name, r.GetInfo())
		require.Contains(t, r.GetInfo(), tc.info, tc.name)
		if tc.want != cb.Status_SUCCESS {
			require.Contains(t, r.GetInfo(), ErrTLSBinding.Error(), tc.name)
		}
		blocks, st := deliverBlocks(t, c, seek(tc.hash))
		require.Equal(t, tc.want, st, tc.name)
		require.Len(t, blocks, map[bool]int{true: 1}[tc.want == cb.Status_SUCCESS], tc.name)
	}
	calls, _ := ch.takeCalls()
	require.Equal(t, []string{"ProcessNormal", "OrderAsync"}, calls, "only the bound envelope reached the chain")

	// A client of another CA, or without a certificate, does not get
	// through the handshake.
	outsider, outsiderTLS := org2.Issue("user1"), issueTLS(org2, "user1")
	refused := func(cert *msptest.TLSCert) error {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		stream, err := tlsClient(t, addr, roots, cert).Broadcast(ctx)
		if err != nil {
			return err
		}
		if err := stream.Send(tx(CertHash(outsiderTLS.Cert.Raw))); err != nil {
			_, err = stream.Recv()
			return err
		}
		_, err = stream.Recv()
		return err
	}
	for name, cert := range map[string]*msptest.TLSCert{"another CA": outsiderTLS, "no certificate": nil} {
		err := refused(cert)
		require.Equal(t, codes.Unavailable, status.Code(err), "%s: %v", name, err)
	}
	calls, _ = ch.takeCalls()
	require.Empty(t, calls)

	// A configuration update that adds Org2 lets its members in.
	ch.mu.Lock()
	ch.cfg = bundle(1, org1, org2)
	ch.mu.Unlock()
	c2 := tlsClient(t, addr, roots, outsiderTLS)
	env, err := protoutil.NewSignedEnvelopeWithTLSBinding(cb.HeaderType_ENDORSER_TRANSACTION, "ch", nil, outsider, CertHash(outsiderTLS.Cert.Raw))
	require.NoError(t, err)
	r := broadcastOne(t, c2, env)
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
}

// TestTLSBindingScope checks that BindDeliver checks Deliver requests
// only, and that a binding cannot be met without a client certificate.
func TestTLSBindingScope(t *testing.T) {
	l := ledger.NewMemory()
	appendBlocks(t, l, 1)
	c := serveChannels(t, map[string]Channel{"ch": {Chain: &recordingChain{cfg: readableConfig{}}, Ledger: l}}, WithTLSBinding(BindDeliver))
	r := broadcastOne(t, c, unsignedTx("ch", nil))
	require.Equal(t, cb.Status_SUCCESS, r.GetStatus(), r.GetInfo())
	seek := unsignedSeek("ch", &ab.SeekInfo{Start: seekOldest(), Stop: seekOldest()})
	_, st := deliverBlocks(t, c, seek)
	require.Equal(t, cb.Status_BAD_REQUEST, st, "no hash")

	h, err := protoutil.EnvelopeHeaders(seek)
	require.NoError(t, err)
	h.ChannelHeader.TlsCertHash = []byte("claimed")
	err = checkBinding(context.Background(), h.ChannelHeader)
	require.ErrorIs(t, err, ErrTLSBinding)
	require.ErrorContains(t, err, "the connection has no TLS client certificate")

	for _, b := range []TLSBinding{BindNone, BindDeliver, BindAll} {
		got, err := ParseTLSBinding(b.String())
		require.NoError(t, err)
		require.Equal(t, b, got)
	}
	_, err = ParseTLSBinding("some")
	require.ErrorContains(t, err, `TLS binding "some": want none, deliver or all`)
	require.Equal(t, "TLSBinding(9)", TLSBinding(9).String())
}
