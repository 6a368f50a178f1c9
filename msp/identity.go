package msp

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/asn1"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"time"

	"google.golang.org/protobuf/proto"

	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
	"github.com/kafkaconsensus/kafkaconsensus/protoutil"
)

// Identity is an X.509 identity of one MSP. An Identity obtained from
// Manager.Deserialize has only been decoded: MSP.Validate (or
// Manager.Validate) tells whether the MSP trusts it. Implementations are
// immutable and safe for concurrent use.
type Identity interface {
	// MSPID returns the ID of the MSP the identity claims to belong to.
	MSPID() string
	// Certificate returns the identity's certificate. The caller must not
	// modify it.
	Certificate() *x509.Certificate
	// Serialize returns the marshalled msp.SerializedIdentity: the MSP ID
	// and the PEM encoding of the certificate. The caller owns the slice.
	Serialize() ([]byte, error)
	// Verify checks sig over msg with the certificate's public key: an
	// ASN.1 DER low-S ECDSA signature of the SHA-256 digest of msg (P-256
	// or P-384), or a plain Ed25519 signature of msg. A signature that does
	// not verify returns an error wrapping ErrBadSignature.
	Verify(msg, sig []byte) error
	// OrganizationalUnits returns the OU attributes of the certificate's
	// subject.
	OrganizationalUnits() []string
	// ExpiresAt returns the end of the certificate's validity period.
	ExpiresAt() time.Time
}

// SigningIdentity is an Identity that holds its private key.
type SigningIdentity interface {
	Identity
	// Sign signs msg: ECDSA keys sign the SHA-256 digest of msg and the
	// signature is normalised to low S and DER encoded; Ed25519 keys sign
	// msg itself.
	Sign(msg []byte) ([]byte, error)
}

type identity struct {
	mspID      string
	cert       *x509.Certificate
	serialized []byte
}

func newIdentity(mspID string, cert *x509.Certificate) *identity {
	b := protoutil.MarshalOrPanic(&mspb.SerializedIdentity{
		Mspid:   mspID,
		IdBytes: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
	})
	return &identity{mspID: mspID, cert: cert, serialized: b}
}

func (id *identity) MSPID() string                  { return id.mspID }
func (id *identity) Certificate() *x509.Certificate { return id.cert }
func (id *identity) OrganizationalUnits() []string  { return id.cert.Subject.OrganizationalUnit }
func (id *identity) ExpiresAt() time.Time           { return id.cert.NotAfter }

func (id *identity) Serialize() ([]byte, error) {
	return append([]byte(nil), id.serialized...), nil
}

func (id *identity) Verify(msg, sig []byte) error {
	if err := verifySignature(id.cert.PublicKey, msg, sig); err != nil {
		return fmt.Errorf("identity %q of %s: %w", id.cert.Subject.CommonName, id.mspID, err)
	}
	return nil
}

type signingIdentity struct {
	*identity
	key crypto.Signer
}

// NewSigningIdentity returns a SigningIdentity of MSP mspID made of a PEM
// certificate and its private key. The key must match the certificate's
// public key and be ECDSA (P-256 or P-384) or Ed25519. The key may be any
// crypto.Signer (an HSM handle, for example).
func NewSigningIdentity(mspID string, certPEM []byte, key crypto.Signer) (SigningIdentity, error) {
	cert, err := parseCertificatePEM(certPEM)
	if err != nil {
		return nil, err
	}
	if key == nil {
		return nil, fmt.Errorf("%w: nil private key", ErrMalformed)
	}
	pub, ok := key.Public().(interface{ Equal(crypto.PublicKey) bool })
	if !ok || !pub.Equal(cert.PublicKey) {
		return nil, fmt.Errorf("%w: private key does not match the certificate of %q", ErrMalformed, cert.Subject.CommonName)
	}
	if err := checkKeyType(cert.PublicKey); err != nil {
		return nil, err
	}
	return &signingIdentity{identity: newIdentity(mspID, cert), key: key}, nil
}

func (s *signingIdentity) Sign(msg []byte) ([]byte, error) {
	switch pub := s.key.Public().(type) {
	case *ecdsa.PublicKey:
		digest := sha256.Sum256(msg)
		der, err := s.key.Sign(rand.Reader, digest[:], crypto.SHA256)
		if err != nil {
			return nil, fmt.Errorf("msp: signing: %w", err)
		}
		r, sv, err := unmarshalECDSASignature(der)
		if err != nil {
			return nil, fmt.Errorf("msp: signing: %w", err)
		}
		return marshalECDSASignature(r, toLowS(pub, sv))
	case ed25519.PublicKey:
		sig, err := s.key.Sign(rand.Reader, msg, crypto.Hash(0))
		if err != nil {
			return nil, fmt.Errorf("msp: signing: %w", err)
		}
		return sig, nil
	default:
		return nil, fmt.Errorf("msp: signing: unsupported key type %T", pub)
	}
}

func parseCertificatePEM(b []byte) (*x509.Certificate, error) {
	block, _ := pem.Decode(b)
	if block == nil {
		return nil, fmt.Errorf("%w: no PEM block in certificate bytes", ErrMalformed)
	}
	if block.Type != "CERTIFICATE" {
		return nil, fmt.Errorf("%w: PEM block of type %q, want CERTIFICATE", ErrMalformed, block.Type)
	}
	cert, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: parsing certificate: %w", ErrMalformed, err)
	}
	return cert, nil
}

func checkKeyType(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() && k.Curve != elliptic.P384() {
			return fmt.Errorf("%w: unsupported ECDSA curve %s", ErrMalformed, k.Curve.Params().Name)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	default:
		return fmt.Errorf("%w: unsupported public key type %T", ErrMalformed, pub)
	}
}

type ecdsaSignature struct {
	R, S *big.Int
}

func unmarshalECDSASignature(der []byte) (r, s *big.Int, err error) {
	var sig ecdsaSignature
	rest, err := asn1.Unmarshal(der, &sig)
	if err != nil {
		return nil, nil, fmt.Errorf("decoding ECDSA signature: %w", err)
	}
	if len(rest) != 0 {
		return nil, nil, errors.New("trailing bytes after ECDSA signature")
	}
	if sig.R == nil || sig.S == nil || sig.R.Sign() <= 0 || sig.S.Sign() <= 0 {
		return nil, nil, errors.New("ECDSA signature with a non-positive component")
	}
	return sig.R, sig.S, nil
}

func marshalECDSASignature(r, s *big.Int) ([]byte, error) {
	return asn1.Marshal(ecdsaSignature{R: r, S: s})
}

// isLowS reports whether s <= N/2, the only form Fabric accepts.
func isLowS(pub *ecdsa.PublicKey, s *big.Int) bool {
	half := new(big.Int).Rsh(pub.Curve.Params().N, 1)
	return s.Cmp(half) <= 0
}

func toLowS(pub *ecdsa.PublicKey, s *big.Int) *big.Int {
	if isLowS(pub, s) {
		return s
	}
	return new(big.Int).Sub(pub.Curve.Params().N, s)
}

func verifySignature(pub crypto.PublicKey, msg, sig []byte) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if err := checkKeyType(k); err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		r, s, err := unmarshalECDSASignature(sig)
		if err != nil {
			return fmt.Errorf("%w: %w", ErrBadSignature, err)
		}
		if !isLowS(k, s) {
			return fmt.Errorf("%w: ECDSA signature is not low-S", ErrBadSignature)
		}
		digest := sha256.Sum256(msg)
		if !ecdsa.Verify(k, digest[:], r, s) {
			return fmt.Errorf("%w: ECDSA verification failed", ErrBadSignature)
		}
		return nil
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize || len(sig) != ed25519.SignatureSize || !ed25519.Verify(k, msg, sig) {
			return fmt.Errorf("%w: Ed25519 verification failed", ErrBadSignature)
		}
		return nil
	default:
		return fmt.Errorf("%w: unsupported public key type %T", ErrBadSignature, pub)
	}
}

// decodeSerialized decodes a marshalled msp.SerializedIdentity.
func decodeSerialized(serialized []byte) (*mspb.SerializedIdentity, *x509.Certificate, error) {
	sid := new(mspb.SerializedIdentity)
	if err := proto.Unmarshal(serialized, sid); err != nil {
		return nil, nil, fmt.Errorf("%w: decoding serialized identity: %w", ErrMalformed, err)
	}
	cert, err := parseCertificatePEM(sid.GetIdBytes())
	if err != nil {
		return nil, nil, fmt.Errorf("identity of %q: %w", sid.GetMspid(), err)
	}
	return sid, cert, nil
}
