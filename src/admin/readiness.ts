/** What the proxy's readiness endpoints report: 200 only when `ready`. */
export type Readiness = 'starting' | 'ready' | 'draining';
