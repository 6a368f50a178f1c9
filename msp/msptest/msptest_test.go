package msptest_test

import (
	"crypto/elliptic"
	"crypto/tls"
	"crypto/x509"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	"github.com/kafkaconsensus/kafkaconsensus/msp/msptest"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

func newCA(t *testing.T, mspID string, opts ...msptest.CAOption) *msptest.CA {
	t.Helper()
	ca, err := msptest.NewCA(mspID, opts...)
	require.NoError(t, err)
	return ca
}

func issue(t *testing.T, ca *msptest.CA, name string, opts ...msptest.IssueOption) *msptest.Identity {
	t.Helper()
	id, err := ca.Issue(name, opts...)
	require.NoError(t, err)
	return id
}

func buildMSP(t *testing.T, ca *msptest.CA) *msp.MSP {
	t.Helper()
	m, err := ca.MSP()
	require.NoError(t, err)
	return m
}

func TestNewCARejects(t *testing.T) {
	for name, f := range map[string]func() (*msptest.CA, error){
		"empty MSP ID": func() (*msptest.CA, error) { return msptest.NewCA("") },
		"empty name":   func() (*msptest.CA, error) { return msptest.NewCA("Org1MSP", msptest.WithCAName("")) },
		"P-224":        func() (*msptest.CA, error) { return msptest.NewCA("Org1MSP", msptest.WithCurve(elliptic.P224())) },
		"nil clock":    func() (*msptest.CA, error) { return msptest.NewCA("Org1MSP", msptest.WithClock(nil)) },
	} {
		t.Run(name, func(t *testing.T) {
			ca, err := f()
			require.Error(t, err)
			require.Nil(t, ca)
		})
	}
	ca := newCA(t, "Org1MSP")
	_, err := ca.Issue("backwards", msptest.WithValidity(time.Now(), time.Now().Add(-time.Hour)))
	require.Error(t, err)
}

func TestNodeOURoles(t *testing.T) {
	ca := newCA(t, "Org1MSP", msptest.WithNodeOUs())
	m := buildMSP(t, ca)
	require.True(t, m.NodeOUsEnabled())
	for _, tt := range []struct {
		ou   string
		role mspb.MSPRole_MSPRoleType
	}{
		{msptest.OUClient, mspb.MSPRole_CLIENT},
		{msptest.OUPeer, mspb.MSPRole_PEER},
		{msptest.OUAdmin, mspb.MSPRole_ADMIN},
		{msptest.OUOrderer, mspb.MSPRole_ORDERER},
	} {
		id := issue(t, ca, tt.ou+"1", msptest.WithOU(tt.ou))
		require.NoError(t, m.Validate(id))
		require.NoError(t, m.SatisfiesPrincipal(id, ca.RolePrincipal(tt.role)), tt.ou)
		require.NoError(t, m.SatisfiesPrincipal(id, ca.RolePrincipal(mspb.MSPRole_MEMBER)), tt.ou)
	}
	client := issue(t, ca, "c", msptest.WithOU(msptest.OUClient))
	require.ErrorIs(t, m.SatisfiesPrincipal(client, ca.RolePrincipal(mspb.MSPRole_ADMIN)), msp.ErrPrincipal)
	// With NodeOUs, an identity needs exactly one role.
	require.ErrorIs(t, m.Validate(issue(t, ca, "none")), msp.ErrUntrusted)
}

func TestListedAdmin(t *testing.T) {
	ca := newCA(t, "Org1MSP")
	admin := issue(t, ca, "admin", msptest.ListedAdmin())
	member := issue(t, ca, "member")
	m := buildMSP(t, ca)
	require.Len(t, ca.MSPConfig().GetAdmins(), 1)
	require.NoError(t, m.SatisfiesPrincipal(admin, ca.RolePrincipal(mspb.MSPRole_ADMIN)))
	require.ErrorIs(t, m.SatisfiesPrincipal(member, ca.RolePrincipal(mspb.MSPRole_ADMIN)), msp.ErrPrincipal)
	require.NoError(t, m.SatisfiesPrincipal(member, ca.RolePrincipal(mspb.MSPRole_MEMBER)))
}

func TestIntermediate(t *testing.T) {
	ca := newCA(t, "Org1MSP", msptest.WithNodeOUs())
	ica, err := ca.NewIntermediate()
	require.NoError(t, err)
	require.Same(t, ca, ica.Root())
	require.Same(t, ca.TLSCA(), ica.TLSCA())
	alice := issue(t, ica, "alice", msptest.WithOU(msptest.OUClient))
	require.Same(t, ica, alice.Issuer)
	cfg := ca.MSPConfig()
	require.Len(t, cfg.GetIntermediateCerts(), 1)
	require.NoError(t, buildMSP(t, ca).Validate(alice))
}

func TestRefusedIdentities(t *testing.T) {
	ca := newCA(t, "Org1MSP")
	ica, err := ca.NewIntermediate()
	require.NoError(t, err)
	expired := issue(t, ca, "old", msptest.Expired())
	asCA := issue(t, ca, "ca-as-id", msptest.AsCA())
	revoked := issue(t, ica, "gone")
	kept := issue(t, ica, "kept")
	require.Nil(t, ica.CRL())
	require.NoError(t, ica.Revoke(revoked.Cert))
	require.NotNil(t, ica.CRL())
	require.Error(t, ca.Revoke(revoked.Cert), "issued by another CA")

	m := buildMSP(t, ca)
	require.ErrorIs(t, m.Validate(expired), msp.ErrExpired)
	require.ErrorIs(t, m.Validate(asCA), msp.ErrUntrusted)
	require.ErrorIs(t, m.Validate(revoked), msp.ErrRevoked)
	require.NoError(t, m.Validate(kept))
}

func TestKeyTypes(t *testing.T) {
	ca := newCA(t, "Org1MSP", msptest.WithCurve(elliptic.P384()))
	m := buildMSP(t, ca)
	for _, opt := range []msptest.IssueOption{msptest.Ed25519Key(), msptest.P384Key(), msptest.WithOU("x")} {
		id := issue(t, ca, "id", opt)
		require.NoError(t, m.Validate(id))
		sd, err := id.SignedData([]byte("msg"))
		require.NoError(t, err)
		require.NoError(t, id.Verify(sd.Data, sd.Signature))
	}
}

func TestClock(t *testing.T) {
	past := time.Now().Add(-10 * 24 * time.Hour)
	ca := newCA(t, "Org1MSP", msptest.WithClock(func() time.Time { return past }))
	id := issue(t, ca, "then")
	require.WithinDuration(t, past.Add(24*time.Hour), id.Cert.NotAfter, time.Minute)
	m, err := ca.MSP(msp.WithClock(func() time.Time { return past }))
	require.NoError(t, err)
	require.NoError(t, m.Validate(id))
	require.ErrorIs(t, buildMSP(t, ca).Validate(id), msp.ErrExpired)
}

func TestEnvelope(t *testing.T) {
	ca := newCA(t, "Org1MSP")
	alice := issue(t, ca, "alice")
	env, err := alice.Envelope(cb.HeaderType_MESSAGE, "ch", []byte("data"))
	require.NoError(t, err)
	h, err := protoutil.EnvelopeHeaders(env)
	require.NoError(t, err)
	creator, err := alice.Serialize()
	require.NoError(t, err)
	require.Equal(t, "ch", h.ChannelHeader.GetChannelId())
	require.Equal(t, int32(cb.HeaderType_MESSAGE), h.ChannelHeader.GetType())
	require.Equal(t, creator, h.SignatureHeader.GetCreator())
	require.Equal(t, protoutil.TxID(h.SignatureHeader.GetNonce(), creator), h.ChannelHeader.GetTxId())
	require.Equal(t, []byte("data"), h.Payload.GetData())
	require.NoError(t, alice.Verify(env.Payload, env.Signature))
}

func TestGenesisBlock(t *testing.T) {
	org1, orderer := newCA(t, "Org1MSP"), newCA(t, "OrdererMSP")
	g, err := msptest.GenesisBlock("ch", []*msptest.CA{org1},
		msptest.WithOrdererOrgs(orderer),
		msptest.WithBatchSize(7, 2<<20, 1<<20),
		msptest.WithBatchTimeout(time.Second),
		msptest.WithKafkaBrokers("k1:9092"))
	require.NoError(t, err)
	b, err := channelconfig.FromGenesisBlock(g)
	require.NoError(t, err)
	require.ElementsMatch(t, []string{"Org1MSP", "OrdererMSP"}, b.MSPManager().MSPIDs())
	require.Equal(t, uint32(7), b.BatchSize().MaxMessageCount)
	require.Equal(t, time.Second, b.BatchTimeout())
	require.Equal(t, []string{"k1:9092"}, b.KafkaBrokers())

	env, err := issue(t, org1, "alice").Envelope(cb.HeaderType_ENDORSER_TRANSACTION, "ch", []byte("tx"))
	require.NoError(t, err)
	require.NoError(t, b.ValidateNormal(env))

	_, err = msptest.GenesisBlock("", []*msptest.CA{org1})
	require.Error(t, err)
}

func TestManager(t *testing.T) {
	org1, org2 := newCA(t, "Org1MSP"), newCA(t, "Org2MSP")
	mgr, err := msptest.Manager(org1, org2)
	require.NoError(t, err)
	require.NoError(t, mgr.Validate(issue(t, org2, "bob")))
	_, err = msptest.Manager(org1, org1)
	require.Error(t, err)
}

func TestWriteMSPDirLoads(t *testing.T) {
	for _, nodeOUs := range []bool{false, true} {
		var opts []msptest.CAOption
		if nodeOUs {
			opts = append(opts, msptest.WithNodeOUs())
		}
		ca := newCA(t, "Org1MSP", opts...)
		ica, err := ca.NewIntermediate()
		require.NoError(t, err)
		admin := issue(t, ca, "Admin@org1", msptest.WithOU(msptest.OUAdmin), msptest.ListedAdmin())
		signer := issue(t, ica, "peer0", msptest.Ed25519Key(), msptest.WithOU(msptest.OUPeer))
		require.NoError(t, ica.Revoke(issue(t, ica, "gone", msptest.WithOU(msptest.OUClient)).Cert))

		dir := filepath.Join(t.TempDir(), "msp")
		require.NoError(t, ca.WriteMSPDir(dir, signer))
		cfg, err := msp.LoadDir(dir, "Org1MSP")
		require.NoError(t, err)
		want := ca.MSPConfig()
		require.Equal(t, want.GetRootCerts(), cfg.GetRootCerts())
		require.Equal(t, want.GetIntermediateCerts(), cfg.GetIntermediateCerts())
		require.Equal(t, want.GetTlsRootCerts(), cfg.GetTlsRootCerts())
		require.Equal(t, want.GetAdmins(), cfg.GetAdmins())
		require.Len(t, cfg.GetRevocationList(), 1)
		require.Equal(t, nodeOUs, cfg.GetFabricNodeOus().GetEnable())
		m, err := msp.New(cfg)
		require.NoError(t, err)
		si, err := msp.LoadSigningIdentity(dir, "Org1MSP")
		require.NoError(t, err)
		require.NoError(t, m.Validate(si))
		require.NoError(t, m.SatisfiesPrincipal(admin, ca.RolePrincipal(mspb.MSPRole_ADMIN)))
		require.FileExists(t, filepath.Join(dir, "signcerts", "peer0-cert.pem"))
		require.FileExists(t, filepath.Join(dir, "admincerts", "Admin@org1-cert.pem"))
		require.FileExists(t, filepath.Join(dir, "keystore", msptest.FileKey))
	}
}

func TestWriteCADir(t *testing.T) {
	ca := newCA(t, "Org1MSP", msptest.WithCAName("ca.org1.example.com"))
	require.Equal(t, "tlsca.org1.example.com", ca.TLSCA().Cert.Subject.CommonName)
	dir := t.TempDir()
	require.NoError(t, ca.TLSCA().WriteCADir(dir))
	b, err := os.ReadFile(filepath.Join(dir, "tlsca.org1.example.com-cert.pem"))
	require.NoError(t, err)
	require.Equal(t, ca.TLSCA().CertPEM, b)
	require.FileExists(t, filepath.Join(dir, msptest.FileKey))
}

func TestIssueTLS(t *testing.T) {
	ca := newCA(t, "Org1MSP")
	server, err := ca.IssueTLS("orderer0", []string{"127.0.0.1", "localhost"})
	require.NoError(t, err)
	client, err := ca.IssueTLS("client", nil)
	require.NoError(t, err)
	require.Equal(t, ca.TLSCA().CertPEM, server.CACertPEM)
	require.Equal(t, [][]byte{ca.TLSCA().CertPEM}, ca.MSPConfig().GetTlsRootCerts())
	_, err = server.Cert.Verify(x509.VerifyOptions{DNSName: "localhost", Roots: server.CAPool()})
	require.NoError(t, err)

	sc, err := server.Certificate()
	require.NoError(t, err)
	cc, err := client.Certificate()
	require.NoError(t, err)
	ln, err := tls.Listen("tcp", "127.0.0.1:0", &tls.Config{
		Certificates: []tls.Certificate{sc},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    client.CAPool(),
	})
	require.NoError(t, err)
	defer ln.Close()
	errc := make(chan error, 1)
	go func() {
		c, err := ln.Accept()
		if err == nil {
			err = c.(*tls.Conn).Handshake()
			c.Close()
		}
		errc <- err
	}()
	conn, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: server.CAPool(), Certificates: []tls.Certificate{cc}})
	require.NoError(t, err)
	conn.Close()
	require.NoError(t, <-errc)

	dir := t.TempDir()
	require.NoError(t, server.WriteDir(dir))
	_, err = tls.LoadX509KeyPair(filepath.Join(dir, msptest.FileTLSCert), filepath.Join(dir, msptest.FileTLSKey))
	require.NoError(t, err)
	require.FileExists(t, filepath.Join(dir, msptest.FileTLSCACert))
}
