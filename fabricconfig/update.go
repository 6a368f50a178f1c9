package fabricconfig

import (
	"errors"
	"fmt"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/kafkaconsensus/kafkaconsensus/channelconfig"
	"github.com/kafkaconsensus/kafkaconsensus/msp"
	cb "github.com/kafkaconsensus/kafkaconsensus/protos/common"
)

// ProposeConfigUpdate computes the configuration that the CONFIG_UPDATE
// envelope env establishes, as Fabric's orderer does (configtx's
// ProposeConfigUpdate, then the new configuration's own checks), and
// returns it as the ConfigEnvelope of a CONFIG message: the new Config,
// with sequence Sequence()+1, and env as last_update. The envelope's own
// signature is not checked here (see ProcessConfigUpdate).
//
// The update is a ConfigUpdateEnvelope whose ConfigUpdate names this
// channel and carries a read set and a write set, and whose
// ConfigSignatures are each over signature_header followed by the
// config_update bytes. Fabric's rules apply:
//
//   - every element of the read set exists at the version the read set
//     gives;
//   - the delta set is the write set minus the elements the read set holds
//     at the same version; it must not be empty;
//   - an element of the delta set that exists must be at its current
//     version plus one, and its current mod_policy must be satisfied by
//     the ConfigSignatures; a relative mod_policy ("Admins") is resolved
//     in the element's group (for a group, in the group itself), an
//     absolute one ("/Channel/Orderer/Admins") from the root; a new element
//     must be at version 0 and needs no policy of its own: adding it
//     modifies its group, whose version and mod_policy are then checked;
//   - every written element's mod_policy is a non-empty policy name;
//   - the new tree is the current one with the delta set applied; a group
//     of the delta set has exactly the elements its write set lists, so
//     elements it omits are deleted.
//
// Errors are worded as Fabric's ("error authorizing update: error
// validating ReadSet: proposed update requires that key [Group]
// /Channel/Application/Org1MSP be at version 0, but it is currently at
// version 1") and wrap ErrBadUpdate and, for wrong versions,
// channelconfig.ErrBadSequence, for a read set of another channel
// channelconfig.ErrWrongChannel, for malformed input or an invalid result
// channelconfig.ErrMalformed, for an unsatisfied mod_policy
// msp.ErrPolicyNotSatisfied.
func (b *Bundle) ProposeConfigUpdate(env *cb.Envelope) (*cb.ConfigEnvelope, error) {
	ce, _, err := b.propose(env)
	return ce, err
}

// propose is ProposeConfigUpdate, also returning the new Bundle.
func (b *Bundle) propose(env *cb.Envelope) (*cb.ConfigEnvelope, *Bundle, error) {
	cue, err := configUpdateEnvelope(env)
	if err != nil {
		return nil, nil, updateErrorf(channelconfig.ErrMalformed, err, "error converting envelope to config update: %s", err)
	}
	group, err := b.authorizeUpdate(cue)
	if err != nil {
		return nil, nil, withPrefix(err, "error authorizing update")
	}
	ce := &cb.ConfigEnvelope{
		Config:     &cb.Config{Sequence: b.Sequence() + 1, ChannelGroup: group},
		LastUpdate: env,
	}
	nb, err := b.successor(ce.Config)
	if err != nil {
		return nil, nil, err
	}
	return ce, nb, nil
}

// successor builds the Bundle of cfg, a configuration derived from b, and
// checks it as Fabric checks a new configuration.
func (b *Bundle) successor(cfg *cb.Config) (*Bundle, error) {
	nb, err := NewBundle(b.channelID, cfg, b.opts...)
	if err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "initializing channelconfig failed: %s", err)
	}
	if err := b.checkSuccessor(nb); err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "%s", err)
	}
	return nb, nil
}

// configUpdateEnvelope decodes the ConfigUpdateEnvelope of a CONFIG_UPDATE
// envelope.
func configUpdateEnvelope(env *cb.Envelope) (*cb.ConfigUpdateEnvelope, error) {
	if env == nil {
		return nil, errors.New("nil envelope")
	}
	p := new(cb.Payload)
	if err := proto.Unmarshal(env.GetPayload(), p); err != nil {
		return nil, fmt.Errorf("decoding payload: %w", err)
	}
	if p.GetHeader() == nil {
		return nil, errors.New("payload has no header")
	}
	ch := new(cb.ChannelHeader)
	if err := proto.Unmarshal(p.GetHeader().GetChannelHeader(), ch); err != nil {
		return nil, fmt.Errorf("decoding channel header: %w", err)
	}
	if t := cb.HeaderType(ch.GetType()); t != cb.HeaderType_CONFIG_UPDATE {
		return nil, fmt.Errorf("not a tx of type CONFIG_UPDATE: %s", t)
	}
	cue := new(cb.ConfigUpdateEnvelope)
	if err := proto.Unmarshal(p.GetData(), cue); err != nil {
		return nil, fmt.Errorf("decoding ConfigUpdateEnvelope: %w", err)
	}
	return cue, nil
}

// authorizeUpdate checks a config update against b (see
// ProposeConfigUpdate) and returns the channel group it results in.
func (b *Bundle) authorizeUpdate(cue *cb.ConfigUpdateEnvelope) (*cb.ConfigGroup, error) {
	cu := new(cb.ConfigUpdate)
	if err := proto.Unmarshal(cue.GetConfigUpdate(), cu); err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "error unmarshalling ConfigUpdate: %s", err)
	}
	if cu.GetChannelId() != b.channelID {
		return nil, updateErrorf(channelconfig.ErrWrongChannel, nil, "ConfigUpdate for channel '%s' but envelope for channel '%s'", cu.GetChannelId(), b.channelID)
	}
	readSet, err := mapConfig(cu.GetReadSet())
	if err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "error mapping ReadSet: %s", err)
	}
	if err := b.verifyReadSet(readSet); err != nil {
		return nil, withPrefix(err, "error validating ReadSet")
	}
	writeSet, err := mapConfig(cu.GetWriteSet())
	if err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "error mapping WriteSet: %s", err)
	}
	delta := make(configMap)
	for k, w := range writeSet {
		if r, ok := readSet[k]; ok && r.version() == w.version() {
			continue
		}
		delta[k] = w
	}
	signed, err := configSignedData(cue)
	if err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "%s", err)
	}
	if err := b.verifyDeltaSet(delta, signed); err != nil {
		return nil, withPrefix(err, "error validating DeltaSet")
	}
	merged := make(configMap, len(b.elements)+len(delta))
	for k, e := range b.elements {
		merged[k] = e
	}
	for k, e := range delta {
		merged[k] = e
	}
	for k := range writeSet {
		if _, ok := merged[k]; !ok {
			return nil, updateErrorf(channelconfig.ErrMalformed, nil, "full config did not verify: writeset contained key %s which did not appear in proposed config", k)
		}
	}
	group, err := merged.toGroup()
	if err != nil {
		return nil, updateErrorf(channelconfig.ErrMalformed, err, "could not turn configMap back to channelGroup: %s", err)
	}
	return group, nil
}

// verifyReadSet checks that every element of the read set exists at the
// version it gives.
func (b *Bundle) verifyReadSet(readSet configMap) error {
	for _, k := range sortedKeys(readSet) {
		existing, ok := b.elements[k]
		if !ok {
			return updateErrorf(channelconfig.ErrBadSequence, nil, "existing config does not contain element for %s but was in the read set", k)
		}
		if v := readSet[k].version(); existing.version() != v {
			return updateErrorf(channelconfig.ErrBadSequence, nil, "proposed update requires that key %s be at version %d, but it is currently at version %d", k, v, existing.version())
		}
	}
	return nil
}

// verifyDeltaSet checks the versions and mod_policies of the elements an
// update modifies, and that signed satisfies their current mod_policies.
func (b *Bundle) verifyDeltaSet(delta configMap, signed []msp.SignedData) error {
	if len(delta) == 0 {
		return updateErrorf(channelconfig.ErrMalformed, nil, "delta set was empty -- update would have no effect")
	}
	var checked *msp.CheckedSignatures
	for _, k := range sortedKeys(delta) {
		w := delta[k]
		if err := validateModPolicy(w.modPolicy()); err != nil {
			return updateErrorf(channelconfig.ErrMalformed, err, "invalid mod_policy for element %s: %s", k, err)
		}
		existing, ok := b.elements[k]
		if !ok {
			if w.version() != 0 {
				return updateErrorf(channelconfig.ErrBadSequence, nil, "attempted to set key %s to version %d, but key does not exist", k, w.version())
			}
			continue
		}
		if w.version() != existing.version()+1 {
			return updateErrorf(channelconfig.ErrBadSequence, nil, "attempt to set key %s to version %d, but key is at version %d", k, w.version(), existing.version())
		}
		p, ok := b.policyForElement(existing)
		if !ok {
			return updateErrorf(nil, msp.ErrPolicyNotSatisfied, "unexpected missing policy %s for item %s", existing.modPolicy(), k)
		}
		if checked == nil {
			checked = b.mgr.CheckSignatures(signed)
		}
		if err := p.evaluate(checked); err != nil {
			return updateErrorf(nil, err, "policy for %s not satisfied: %s", k, err)
		}
	}
	return nil
}

// policyForElement returns the policy e's mod_policy names, resolved as
// Fabric resolves it (see ProposeConfigUpdate).
func (b *Bundle) policyForElement(e element) (*policy, bool) {
	g := b.policies
	mp := e.modPolicy()
	if mp != "" && mp[0] != '/' && len(e.path) != 0 {
		names := e.path[1:]
		if e.group != nil {
			names = append(append([]string(nil), names...), e.key)
		}
		for _, name := range names {
			sub, ok := g.groups[name]
			if !ok {
				return nil, false
			}
			g = sub
		}
	}
	return g.get(mp)
}

// validateModPolicy checks that a mod_policy is a non-empty policy name
// or path made of valid configuration IDs.
func validateModPolicy(mp string) error {
	if mp == "" {
		return errors.New("mod_policy not set")
	}
	for i, part := range strings.Split(strings.TrimPrefix(mp, "/"), "/") {
		if err := validateConfigID(part); err != nil {
			return fmt.Errorf("path element at %d is invalid: %w", i, err)
		}
	}
	return nil
}

// configSignedData returns the signatures of a config update, each over
// its signature_header followed by the config_update bytes.
func configSignedData(cue *cb.ConfigUpdateEnvelope) ([]msp.SignedData, error) {
	signed := make([]msp.SignedData, 0, len(cue.GetSignatures()))
	for i, cs := range cue.GetSignatures() {
		sh := new(cb.SignatureHeader)
		if err := proto.Unmarshal(cs.GetSignatureHeader(), sh); err != nil {
			return nil, fmt.Errorf("config signature %d: decoding signature header: %w", i, err)
		}
		data := make([]byte, 0, len(cs.GetSignatureHeader())+len(cue.GetConfigUpdate()))
		data = append(append(data, cs.GetSignatureHeader()...), cue.GetConfigUpdate()...)
		signed = append(signed, msp.SignedData{Data: data, Identity: sh.GetCreator(), Signature: cs.GetSignature()})
	}
	return signed, nil
}

// ProcessConfigUpdate handles a CONFIG_UPDATE envelope submitted to the
// channel as Fabric's orderer does (msgprocessor's ProcessConfigUpdateMsg)
// and returns the CONFIG envelope to order, signed by signer:
//
//  1. initial checks: env passes the checks of ValidateNormal but for its
//     header type, which must be CONFIG_UPDATE (an envelope its signer may
//     not write is refused with channelconfig.ErrForbidden, as Fabric
//     answers FORBIDDEN);
//  2. ProposeConfigUpdate computes the new configuration (errors wrap
//     ErrBadUpdate; Fabric answers BAD_REQUEST);
//  3. the ConfigEnvelope is wrapped into a CONFIG envelope signed by signer
//     (see NewConfigEnvelope);
//  4. final checks: the CONFIG envelope passes the same checks (its size,
//     its signer's validity and the Writers policy).
//
// Errors are worded as Fabric's: "config update for existing channel did
// not pass initial checks: ...", "error applying config update to
// existing channel 'fabchannel': error authorizing update: ...".
func (b *Bundle) ProcessConfigUpdate(env *cb.Envelope, signer Signer) (*cb.Envelope, error) {
	ce, err := b.proposeChecked(env)
	if err != nil {
		return nil, err
	}
	return b.SignConfig(ce, signer)
}

// proposeChecked is steps 1 and 2 of ProcessConfigUpdate.
func (b *Bundle) proposeChecked(env *cb.Envelope) (*cb.ConfigEnvelope, error) {
	if err := b.checkFilters(env, nil, cb.HeaderType_CONFIG_UPDATE); err != nil {
		return nil, withPrefix(err, "config update for existing channel did not pass initial checks")
	}
	ce, _, err := b.propose(env)
	if err != nil {
		return nil, withPrefix(err, "error applying config update to existing channel '%s'", b.channelID)
	}
	return ce, nil
}

// SignConfig is steps 3 and 4 of ProcessConfigUpdate: it wraps ce, a
// ConfigEnvelope that ProposeConfigUpdate or ReproposeConfig computed,
// into a CONFIG envelope signed by signer, and checks it as a CONFIG
// envelope submitted to the channel (its size, its signer's validity and
// the Writers policy).
func (b *Bundle) SignConfig(ce *cb.ConfigEnvelope, signer Signer) (*cb.Envelope, error) {
	out, err := NewConfigEnvelope(b.channelID, ce, signer)
	if err != nil {
		return nil, err
	}
	if err := b.checkFilters(out, nil, cb.HeaderType_CONFIG); err != nil {
		return nil, withPrefix(err, "config update for existing channel did not pass final checks")
	}
	return out, nil
}

// ProcessConfigMsg handles a CONFIG envelope submitted to the channel, or
// one ordered against an older configuration, as Fabric's orderer does:
// it extracts the envelope's last_update and processes it again with
// ProcessConfigUpdate against this configuration. It is ReproposeConfig
// followed by SignConfig.
func (b *Bundle) ProcessConfigMsg(env *cb.Envelope, signer Signer) (*cb.Envelope, error) {
	ce, err := b.ReproposeConfig(env)
	if err != nil {
		return nil, err
	}
	return b.SignConfig(ce, signer)
}

// ReproposeConfig is the part of ProcessConfigMsg that decides and signs
// nothing: it extracts the last_update of env, a CONFIG envelope, and
// returns the ConfigEnvelope that ProcessConfigUpdate's initial checks and
// ProposeConfigUpdate compute from it against this configuration. Every
// node reaches the same verdict on the same envelope, whatever its own
// identity: an ordering node uses it for a CONFIG message that another
// configuration change overtook in the log, and signs the result with
// SignConfig.
func (b *Bundle) ReproposeConfig(env *cb.Envelope) (*cb.ConfigEnvelope, error) {
	_, ce, err := decodeConfigEnvelope(env)
	if err != nil {
		return nil, fmt.Errorf("channel %s: %w", b.channelID, err)
	}
	return b.proposeChecked(ce.GetLastUpdate())
}
