package main

import (
	"crypto/tls"
	"crypto/x509"
	"flag"
	"fmt"
	"os"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/kafkaconsensus/kafkaconsensus/msp"
)

// clientFlags are the flags the broadcast and deliver commands share.
type clientFlags struct {
	orderer     string
	channel     string
	signerDir   string
	signerMSPID string
	tlsCA       string
	serverName  string
}

func (c *clientFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.orderer, "orderer", "127.0.0.1:7050", "`address` of the orderer")
	fs.StringVar(&c.channel, "channel", "", "channel ID")
	fs.StringVar(&c.signerDir, "signer", "", "MSP `folder` of the signing identity")
	fs.StringVar(&c.signerMSPID, "signer-mspid", "", "MSP ID of the signing identity")
	fs.StringVar(&c.tlsCA, "tls-ca", "", "PEM `file` of the CA of the orderer's TLS certificate (enables TLS)")
	fs.StringVar(&c.serverName, "tls-server-name", "", "host name expected in the orderer's TLS certificate (default: from --orderer)")
}

func (c *clientFlags) check() error {
	if c.channel == "" || c.signerDir == "" || c.signerMSPID == "" {
		return fmt.Errorf("--channel, --signer and --signer-mspid are required")
	}
	return nil
}

func (c *clientFlags) signer() (msp.SigningIdentity, error) {
	return msp.LoadSigningIdentity(c.signerDir, c.signerMSPID)
}

// connect loads the signing identity and connects to the orderer. The
// caller closes the connection.
func (c *clientFlags) connect() (msp.SigningIdentity, *grpc.ClientConn, error) {
	signer, err := c.signer()
	if err != nil {
		return nil, nil, err
	}
	conn, err := c.dial()
	if err != nil {
		return nil, nil, err
	}
	return signer, conn, nil
}

// dial connects to the orderer, over TLS when --tls-ca is set.
func (c *clientFlags) dial() (*grpc.ClientConn, error) {
	creds, err := clientCredentials(c.tlsCA, c.serverName)
	if err != nil {
		return nil, fmt.Errorf("--tls-ca: %w", err)
	}
	return dialOrderer(c.orderer, creds)
}

// clientCredentials returns the transport credentials of a client of
// orderers: plaintext when caFile is "", otherwise TLS trusting the CAs of
// the PEM file caFile. An empty serverName means the host of the address
// dialled.
func clientCredentials(caFile, serverName string) (credentials.TransportCredentials, error) {
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
	return credentials.NewTLS(&tls.Config{RootCAs: pool, ServerName: serverName, MinVersion: tls.VersionTLS12}), nil
}

// dialOrderer returns a client connection that allows Fabric's message
// sizes.
func dialOrderer(addr string, creds credentials.TransportCredentials) (*grpc.ClientConn, error) {
	return grpc.NewClient(addr, grpc.WithTransportCredentials(creds),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes)))
}
