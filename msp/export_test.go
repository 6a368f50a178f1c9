package msp

// WithCacheSize bounds each cache of the MSP to n entries.
func WithCacheSize(n int) Option { return func(o *options) { o.cacheSize = n } }

// CacheLen returns the number of cached identities and validations of m.
func CacheLen(m *MSP) (identities, validations int) { return m.ids.len(), m.valid.len() }

// ManagerCacheLen returns the number of identities cached by m.
func ManagerCacheLen(m *Manager) int { return m.cache.len() }
