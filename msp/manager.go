package msp

import (
	"fmt"
	"slices"

	mspb "github.com/kafkaconsensus/kafkaconsensus/protos/msp"
)

// Manager holds the MSPs of several organisations by MSP ID and dispatches
// identities to the MSP they name. It is immutable and safe for concurrent
// use.
type Manager struct {
	msps  map[string]*MSP
	ids   []string
	cache *boundedCache[*identity] // deserialized identities by serialized bytes
}

// NewManager returns a Manager of msps, which must have distinct IDs.
func NewManager(msps ...*MSP) (*Manager, error) {
	m := &Manager{msps: make(map[string]*MSP, len(msps))}
	size := 0
	for _, x := range msps {
		if x == nil {
			return nil, fmt.Errorf("%w: nil MSP", ErrMalformed)
		}
		size = max(size, x.cacheSize)
		if _, dup := m.msps[x.id]; dup {
			return nil, fmt.Errorf("%w: MSP ID %q given twice", ErrMalformed, x.id)
		}
		m.msps[x.id] = x
		m.ids = append(m.ids, x.id)
	}
	slices.Sort(m.ids)
	// The Manager's cache holds identities of every MSP, bounded as the
	// largest of the MSPs' caches.
	m.cache = newBoundedCache[*identity](max(size, 1))
	return m, nil
}

// MSP returns the MSP of the given ID.
func (m *Manager) MSP(id string) (*MSP, bool) {
	x, ok := m.msps[id]
	return x, ok
}

// MSPIDs returns the IDs of the MSPs, sorted. The caller owns the slice.
func (m *Manager) MSPIDs() []string { return slices.Clone(m.ids) }

// Deserialize decodes a marshalled msp.SerializedIdentity into an Identity
// of the MSP it names. An MSP ID the Manager does not know returns an error
// wrapping ErrUnknownMSP, undecodable bytes one wrapping ErrMalformed. The
// identity is not validated: see Validate. Identities that decode are
// cached by their serialized bytes (see MSP.Deserialize).
func (m *Manager) Deserialize(serialized []byte) (Identity, error) {
	if id, ok := m.cache.get(serialized); ok {
		return id, nil
	}
	sid, cert, err := decodeSerialized(serialized)
	if err != nil {
		return nil, err
	}
	x, ok := m.msps[sid.GetMspid()]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMSP, sid.GetMspid())
	}
	id := x.remember(serialized, cert)
	m.cache.put(serialized, id)
	return id, nil
}

// Validate validates id with the MSP it names (see MSP.Validate).
func (m *Manager) Validate(id Identity) error {
	x, err := m.msp(id)
	if err != nil {
		return err
	}
	return x.Validate(id)
}

// SatisfiesPrincipal checks id against p with the MSP id names (see
// MSP.SatisfiesPrincipal).
func (m *Manager) SatisfiesPrincipal(id Identity, p *mspb.MSPPrincipal) error {
	x, err := m.msp(id)
	if err != nil {
		return err
	}
	return x.SatisfiesPrincipal(id, p)
}

func (m *Manager) msp(id Identity) (*MSP, error) {
	if id == nil {
		return nil, fmt.Errorf("%w: nil identity", ErrMalformed)
	}
	x, ok := m.msps[id.MSPID()]
	if !ok {
		return nil, fmt.Errorf("%w: %q", ErrUnknownMSP, id.MSPID())
	}
	return x, nil
}
