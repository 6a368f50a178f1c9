package main

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"flag"
	"fmt"
	"os"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/atomicbroadcast"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
)

// clientFlags are the flags the broadcast and deliver commands share.
type clientFlags struct {
	orderer string
	channel string
	stall   time.Duration
	signer  signerFlags
	tls     clientTLSFlags

	certHash []byte // of the TLS client certificate, set by connect
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.orderer, "orderer", "127.0.0.1:7050", "`address` of the orderer")
	fs.StringVar(&c.channel, "channel", "", "channel ID")
	fs.DurationVar(&c.stall, "stall-timeout", atomicbroadcast.DefaultClientStallTimeout,
		"how long data sent to the orderer, or a keepalive ping, may stay unacknowledged before the connection is closed (Linux TCP_USER_TIMEOUT; 0: no keepalive, the system's own)")
	c.signer.register(fs, "the signing identity")
	c.tls.register(fs, "", "the orderer's", "--orderer")
}

func (c *clientFlags) check() error {
	if c.channel == "" || c.signer.check(true) != nil {
		return errors.New("--channel, --signer and --signer-mspid are required")
	}
	if c.stall < 0 {
		return fmt.Errorf("--stall-timeout %v: must be 0 (off) or positive", c.stall)
	}
	return nil
}

// connect loads the signing identity and connects to the orderer, and
// sets certHash to bind requests to the TLS client certificate. The caller
// closes the connection.
func (c *clientFlags) connect() (msp.SigningIdentity, *grpc.ClientConn, error) {
	signer, err := c.signer.load()
	if err != nil {
		return nil, nil, err
	}
	creds, hash, err := c.tls.credentials()
	if err != nil {
		return nil, nil, err
	}
	c.certHash = hash
	conn, err := dialOrderer(c.orderer, creds, c.stall)
	if err != nil {
		return nil, nil, err
	}
	return signer, conn, nil
}

// clientCredentials returns the transport credentials of a client of
// orderers: plaintext when caFile is "", otherwise TLS trusting the CAs of
// the PEM file caFile, presenting certs to servers that ask for a client
// certificate. An empty serverName means the host of the address dialled.
func clientCredentials(caFile, serverName string, certs ...tls.Certificate) (credentials.TransportCredentials, error) {
	if caFile == "" {
		return insecure.NewCredentials(), nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("%s: no PEM certificate", caFile)
	}
	return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: serverName, Certificates: certs, MinVersion: tls.VersionTLS12}), nil
}

// dialOrderer returns a client connection that allows Fabric's message
// sizes and closes itself when what it sends goes unacknowledged for
// stall (see atomicbroadcast.DialOptions).
func dialOrderer(addr string, creds credentials.TransportCredentials, stall time.Duration) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, atomicbroadcast.DialOptions(creds, stall)...)
}
