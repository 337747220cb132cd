package mesossim

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"sort"
	"strconv"
	"sync"
	"time"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"
	"k8s.io/utils/clock"

	"github.com/kubemesos/kubemesos/mesossim/agent"
	"github.com/kubemesos/kubemesos/mesossim/allocator"
)

// Version is the Mesos version the simulator reports (GET_VERSION, /version), the same as its agents.
const Version = agent.MesosVersion

// Agent is what the master needs from a simulated agent; *agent.Agent implements it. The master calls
// these methods without holding its own lock, so an agent may call back into the master synchronously.
// What the master sends an agent reaches it asynchronously, in the order sent to that agent (agentLink);
// Stop and Partition, faults injected, have happened when the master's method returns.
type Agent interface {
	Launch(fw mesos.FrameworkInfo, executor *mesos.ExecutorInfo, tasks []mesos.TaskInfo, group bool)
	Kill(frameworkID mesos.FrameworkID, taskID mesos.TaskID, killPolicy *mesos.KillPolicy)
	Acknowledge(frameworkID mesos.FrameworkID, taskID mesos.TaskID, uuid []byte)
	ShutdownExecutor(frameworkID mesos.FrameworkID, executorID mesos.ExecutorID)
	ShutdownFramework(frameworkID mesos.FrameworkID)
	FrameworkMessage(frameworkID mesos.FrameworkID, executorID mesos.ExecutorID, data []byte)
	Stop()
	Partition(bool)
}

// ExecutorKiller is implemented by agents that can kill an executor on demand (fault injection).
type ExecutorKiller interface {
	KillExecutor(frameworkID mesos.FrameworkID, executorID mesos.ExecutorID) error
}

// Config configures a Master.
type Config struct {
	// Clock drives heartbeats, offer timeouts, failover timeouts and filters. Default: real clock.
	Clock clock.WithTickerAndDelayedExecution
	// Log is the logger. Default: logrus standard logger.
	Log logrus.FieldLogger
	// Hostname and Port go into MasterInfo.
	Hostname string
	Port     uint32
	// HeartbeatInterval between HEARTBEAT events (Mesos: 15s).
	HeartbeatInterval time.Duration
	// AllocationInterval between batch allocations (Mesos: 1s). Zero or negative: manual mode, offers
	// are made only when Allocate is called (deterministic tests).
	AllocationInterval time.Duration
	// OfferTimeout rescinds offers held longer (Mesos --offer_timeout); zero: never.
	OfferTimeout time.Duration
	// Weights per role (Mesos --weights).
	Weights map[string]float64
	// FairSharingExcludedResourceNames are left out of every DRF share (Mesos
	// --fair_sharing_excluded_resource_names).
	FairSharingExcludedResourceNames []string
	// Seed for the allocator's agent order.
	Seed int64
	// MaxCompletedFrameworks and MaxCompletedTasksPerFramework bound history (Mesos defaults 50, 1000).
	MaxCompletedFrameworks        int
	MaxCompletedTasksPerFramework int
	// AuthenticateHTTPFrameworks is --authenticate_http_frameworks with
	// --http_framework_authenticators=basic: /api/v1/scheduler requires HTTP basic authentication
	// with one of Credentials (--credentials: principal → secret), and a framework's calls must come
	// from its FrameworkInfo.principal.
	AuthenticateHTTPFrameworks bool
	Credentials                map[string]string
	// AuthenticateHTTPReadWrite is --authenticate_http_readwrite: the operator API (/api/v1) and
	// /quota require HTTP basic authentication with one of Credentials.
	AuthenticateHTTPReadWrite bool
	// QuotaACLs are the update_quotas ACLs of --acls (nil: no authorizer, every UPDATE_QUOTA allowed);
	// QuotaACLsPermissive decides when none applies.
	QuotaACLs           []QuotaACL
	QuotaACLsPermissive bool
}

// Master is the simulated Mesos master. Create it with NewMaster, register agents with AddAgent, serve
// its Handler, and call Close when done.
type Master struct {
	cfg   Config
	log   logrus.FieldLogger
	clock clock.WithTickerAndDelayedExecution

	mu         sync.Mutex
	acts       []func() // agent calls collected under mu, run after unlock
	info       mesos.MasterInfo
	startTime  time.Time
	elected    time.Time
	alloc      *allocator.Allocator
	frameworks map[string]*framework
	completed  []*framework
	agents     map[string]*agentEntry
	offers     map[string]*offer
	nextFw     int
	nextOffer  int
	faults     updateFaults
	allocKick  chan struct{}
	stop       chan struct{}
	stopOnce   sync.Once
	wg         sync.WaitGroup
	failovers  int
	maint      maintenanceState
}

type updateFaults struct {
	delay     time.Duration
	duplicate bool
}

type agentEntry struct {
	info         mesos.AgentInfo
	handle       Agent
	link         *agentLink // what the master sends the agent
	registered   time.Time
	reregistered *time.Time
	unreachable  bool
	unreachableT time.Time
	// disconnected: the agent process went away (a restart) and has not re-registered (agentrestart.go).
	disconnected bool
}

// ip is the agent's address as its libprocess PID carries it (what Mesos reports in the agent's pid
// and offer URLs): the host of a simulated agent's endpoint, which agents on the pod network each have
// of their own; 127.0.0.1 for agents that do not say.
func (ag *agentEntry) ip() string {
	if a, ok := ag.handle.(interface{ Endpoint() string }); ok {
		if host, _, err := net.SplitHostPort(a.Endpoint()); err == nil && host != "" {
			return host
		}
	}
	return "127.0.0.1"
}

func (ag *agentEntry) pid() string {
	return "slave(1)@" + net.JoinHostPort(ag.ip(), strconv.Itoa(int(ag.info.GetPort())))
}

type offer struct {
	offer mesos.Offer
	role  string
	timer clock.Timer
}

type task struct {
	task     mesos.Task
	role     string
	terminal bool // resources already recovered
	// reachableState is the state before the agent became unreachable; the agent reports it again when
	// it re-registers.
	reachableState mesos.TaskState
	// uuid of the latest terminal update; acknowledging it completes the task.
	terminalUUID []byte
}

type framework struct {
	id          string
	info        mesos.FrameworkInfo
	roles       []string
	stream      *stream
	active      bool
	registered  time.Time
	reregTime   *time.Time
	unregTime   *time.Time
	failover    clock.Timer
	tasks       map[string]*task
	unreachable map[string]*task // tasks on partitioned agents
	completed   []*task
	executors   map[string]map[string]mesos.ExecutorInfo // agent → executor ID → info
	offers      map[string]bool
	// inverseOffers are the IDs of the framework's outstanding inverse offers (maintenance.go).
	inverseOffers map[string]bool
	removed       bool
}

func (f *framework) capable(c mesos.FrameworkInfo_Capability_Type) bool {
	for _, cap := range f.info.Capabilities {
		if cap.Type == c {
			return true
		}
	}
	return false
}

func (f *framework) partitionAware() bool {
	return f.capable(mesos.FrameworkInfo_Capability_PARTITION_AWARE)
}

// NewMaster returns a master with no agents. Unless cfg.AllocationInterval <= 0 it runs a background
// allocation loop until Close.
func NewMaster(cfg Config) *Master {
	if cfg.Clock == nil {
		cfg.Clock = clock.RealClock{}
	}
	if cfg.Log == nil {
		cfg.Log = logrus.StandardLogger()
	}
	if cfg.HeartbeatInterval <= 0 {
		cfg.HeartbeatInterval = 15 * time.Second
	}
	if cfg.Hostname == "" {
		cfg.Hostname = "127.0.0.1"
	}
	if cfg.Port == 0 {
		cfg.Port = 5050
	}
	if cfg.MaxCompletedFrameworks == 0 {
		cfg.MaxCompletedFrameworks = 50
	}
	if cfg.MaxCompletedTasksPerFramework == 0 {
		cfg.MaxCompletedTasksPerFramework = 1000
	}
	m := &Master{
		cfg:        cfg,
		log:        cfg.Log.WithField("component", "mesos-master"),
		clock:      cfg.Clock,
		alloc:      allocator.New(allocator.Config{Weights: cfg.Weights, Seed: cfg.Seed, FairSharingExcluded: cfg.FairSharingExcludedResourceNames}),
		frameworks: map[string]*framework{},
		agents:     map[string]*agentEntry{},
		offers:     map[string]*offer{},
		allocKick:  make(chan struct{}, 1),
		stop:       make(chan struct{}),
	}
	m.startTime = m.clock.Now()
	m.elect()
	if cfg.AllocationInterval > 0 {
		m.wg.Add(1)
		go m.allocationLoop()
	}
	return m
}

func (m *Master) elect() {
	port := m.cfg.Port
	pid := fmt.Sprintf("master@%s:%d", m.cfg.Hostname, port)
	m.info = mesos.MasterInfo{
		ID:       newUUID(),
		IP:       0x0100007f,
		Port:     &port,
		PID:      &pid,
		Hostname: &m.cfg.Hostname,
		Version:  strPtr(Version),
		Address:  &mesos.Address{Hostname: &m.cfg.Hostname, IP: strPtr("127.0.0.1"), Port: int32(port)},
	}
	m.elected = m.clock.Now()
}

func strPtr(s string) *string { return &s }

func newUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = (b[6] & 0x0f) | 0x40
	b[8] = (b[8] & 0x3f) | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}

// afterFunc runs f in its own goroutine after d on the master's clock. (The fake clock calls
// AfterFunc callbacks synchronously under its own lock, so f must not run inline.)
func (m *Master) afterFunc(d time.Duration, f func()) clock.Timer {
	return m.clock.AfterFunc(d, func() { go f() })
}

// Info returns the current MasterInfo (its ID changes on each simulated failover).
func (m *Master) Info() mesos.MasterInfo {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.info
}

// lock/unlock: unlock runs the agent calls queued with later() after releasing mu, in order.
func (m *Master) lock() { m.mu.Lock() }

func (m *Master) unlock() {
	acts := m.acts
	m.acts = nil
	m.mu.Unlock()
	for _, a := range acts {
		a()
	}
}

func (m *Master) later(f func()) { m.acts = append(m.acts, f) }

// Close stops the allocation loop, closes every stream and cancels timers. Agents are not stopped.
func (m *Master) Close() {
	m.stopOnce.Do(func() {
		close(m.stop)
		m.lock()
		for _, f := range m.frameworks {
			if f.stream != nil {
				f.stream.close()
				f.stream = nil
			}
			if f.failover != nil {
				f.failover.Stop()
			}
		}
		for _, o := range m.offers {
			if o.timer != nil {
				o.timer.Stop()
			}
		}
		m.unlock()
		m.wg.Wait()
	})
}

func (m *Master) allocationLoop() {
	defer m.wg.Done()
	t := m.clock.NewTicker(m.cfg.AllocationInterval)
	defer t.Stop()
	for {
		select {
		case <-m.stop:
			return
		case <-t.C():
		case <-m.allocKick:
		}
		m.Allocate()
	}
}

// kick asks the allocation loop for an early cycle, as Mesos allocates right away when a framework
// (re)subscribes or revives and when an agent (re)registers; recovered resources wait for the next
// batch. No-op in manual mode.
func (m *Master) kick() {
	if m.cfg.AllocationInterval <= 0 {
		return
	}
	select {
	case m.allocKick <- struct{}{}:
	default:
	}
}

// Allocate runs one allocation cycle now and sends the resulting OFFERS events. It returns the number of
// offers made. In manual mode (AllocationInterval <= 0) this is the only way offers are made.
func (m *Master) Allocate() int {
	m.lock()
	defer m.unlock()
	now := m.clock.Now()
	decisions := m.alloc.Allocate(now)
	byFw := map[string][]mesos.Offer{}
	var order []string
	for _, d := range decisions {
		f := m.frameworks[d.FrameworkID]
		ag := m.agents[d.AgentID]
		if f == nil || ag == nil || f.stream == nil {
			m.alloc.Recover(d.AgentID, d.FrameworkID, d.Role, d.Resources, 0, now)
			continue
		}
		m.nextOffer++
		id := fmt.Sprintf("%s-O%d", m.info.ID, m.nextOffer)
		o := mesos.Offer{
			ID:             mesos.OfferID{Value: id},
			FrameworkID:    mesos.FrameworkID{Value: f.id},
			AgentID:        mesos.AgentID{Value: d.AgentID},
			Hostname:       ag.info.Hostname,
			Resources:      d.Resources,
			Attributes:     ag.info.Attributes,
			AllocationInfo: &mesos.Resource_AllocationInfo{Role: strPtr(d.Role)},
			URL: &mesos.URL{Scheme: "http", Address: mesos.Address{
				Hostname: strPtr(ag.info.Hostname), IP: strPtr(ag.ip()), Port: ag.info.GetPort()}, Path: strPtr("/slave(1)")},
			Unavailability: m.unavailabilityOf(ag),
		}
		for eid := range f.executors[d.AgentID] {
			o.ExecutorIDs = append(o.ExecutorIDs, mesos.ExecutorID{Value: eid})
		}
		sort.Slice(o.ExecutorIDs, func(i, j int) bool { return o.ExecutorIDs[i].Value < o.ExecutorIDs[j].Value })
		off := &offer{offer: o, role: d.Role}
		if m.cfg.OfferTimeout > 0 {
			off.timer = m.afterFunc(m.cfg.OfferTimeout, func() { m.offerTimedOut(id) })
		}
		m.offers[id] = off
		f.offers[id] = true
		if _, ok := byFw[f.id]; !ok {
			order = append(order, f.id)
		}
		byFw[f.id] = append(byFw[f.id], offerView(f, o))
	}
	n := 0
	for _, fid := range order {
		offers := byFw[fid]
		n += len(offers)
		m.frameworks[fid].stream.send(&scheduler.Event{Type: scheduler.Event_OFFERS, Offers: &scheduler.Event_Offers{Offers: offers}})
		m.log.WithFields(logrus.Fields{"framework": fid, "offers": len(offers)}).Debug("sent offers")
	}
	m.sendInverseOffers()
	return n
}

// offerView is offer o as framework f receives it, shaped as Master::offer shapes it: a framework
// without MULTI_ROLE gets no allocation_info on the offer or its resources (MESOS-8237: such schedulers
// compare resources as a whole), and one without RESERVATION_REFINEMENT gets its resources in the
// pre-refinement format (convertResourceFormat(PRE_RESERVATION_REFINEMENT): `role`, plus `reservation`
// when dynamic, instead of `reservations`). The master keeps o itself in the current format.
func offerView(f *framework, o mesos.Offer) mesos.Offer {
	multiRole := f.capable(mesos.FrameworkInfo_Capability_MULTI_ROLE)
	refinement := f.capable(mesos.FrameworkInfo_Capability_RESERVATION_REFINEMENT)
	if multiRole && refinement {
		return o
	}
	rs := make(mesos.Resources, len(o.Resources))
	copy(rs, o.Resources)
	for i := range rs {
		if !multiRole {
			rs[i].AllocationInfo = nil
		}
		if !refinement {
			downgradeResource(&rs[i])
		}
	}
	if !multiRole {
		o.AllocationInfo = nil
	}
	o.Resources = rs
	return o
}

// downgradeResource is convertResourceFormat(PRE_RESERVATION_REFINEMENT) on a resource in the current
// format. Refined reservations (more than one) have no such format; Mesos' allocator never offers
// them to a framework without RESERVATION_REFINEMENT, and the simulator cannot create them.
func downgradeResource(r *mesos.Resource) {
	switch len(r.Reservations) {
	case 0:
		r.Role = strPtr("*")
	case 1:
		src := r.Reservations[0]
		if src.GetType() == mesos.Resource_ReservationInfo_DYNAMIC {
			r.Reservation = &mesos.Resource_ReservationInfo{Principal: src.Principal, Labels: src.Labels}
		}
		r.Role = strPtr(src.GetRole())
		r.Reservations = nil
	}
}

// upgradeResource is convertResourceFormat(POST_RESERVATION_REFINEMENT), which Mesos' master applies
// to the resources of every accepted operation (validateAndUpgradeResources): `role` and
// `reservation` become `reservations`. r must be valid (Resource.Validate).
func upgradeResource(r *mesos.Resource) {
	switch {
	case len(r.Reservations) > 0:
	case r.GetRole() == "*":
	case r.Reservation == nil:
		r.Reservations = []mesos.Resource_ReservationInfo{{Type: mesos.Resource_ReservationInfo_STATIC.Enum(), Role: strPtr(r.GetRole())}}
	default:
		ri := *r.Reservation
		ri.Type = mesos.Resource_ReservationInfo_DYNAMIC.Enum()
		ri.Role = strPtr(r.GetRole())
		r.Reservations = []mesos.Resource_ReservationInfo{ri}
	}
	r.Role, r.Reservation = nil, nil
}

func (m *Master) offerTimedOut(id string) {
	m.lock()
	defer m.unlock()
	if o, ok := m.offers[id]; ok {
		m.log.WithField("offer", id).Info("offer timed out, rescinding")
		m.rescind(o, true, 0)
	}
}

// removeOffer forgets an offer. With recover, its resources return to the allocator (with a filter).
func (m *Master) removeOffer(o *offer, recover bool, refuse time.Duration) {
	id := o.offer.ID.Value
	delete(m.offers, id)
	if o.timer != nil {
		o.timer.Stop()
	}
	if f := m.frameworks[o.offer.FrameworkID.Value]; f != nil {
		delete(f.offers, id)
	}
	if recover {
		m.alloc.Recover(o.offer.AgentID.Value, o.offer.FrameworkID.Value, o.role, o.offer.Resources, refuse, m.clock.Now())
	}
}

// rescind removes an offer and sends RESCIND.
func (m *Master) rescind(o *offer, recover bool, refuse time.Duration) {
	m.removeOffer(o, recover, refuse)
	if f := m.frameworks[o.offer.FrameworkID.Value]; f != nil && f.stream != nil {
		f.stream.send(&scheduler.Event{Type: scheduler.Event_RESCIND, Rescind: &scheduler.Event_Rescind{OfferID: o.offer.ID}})
	}
}

// AddAgent registers an agent with the master (the agent's registration). info.ID must be set.
func (m *Master) AddAgent(info mesos.AgentInfo, a Agent) error {
	if info.ID == nil || info.ID.Value == "" {
		return fmt.Errorf("registering agent %q: agent ID is required", info.Hostname)
	}
	if err := validateResources(info.Resources); err != nil {
		return fmt.Errorf("registering agent %s: %w", info.ID.Value, err)
	}
	m.lock()
	defer m.unlock()
	id := info.ID.Value
	if _, ok := m.agents[id]; ok {
		return fmt.Errorf("registering agent %s: %w", id, ErrAgentExists)
	}
	if ag := (&agentEntry{info: info, handle: a}); m.machineDown(info.Hostname, ag.ip()) {
		// Mesos refuses it and sends ShutdownMessage("Machine is `DOWN`").
		m.later(a.Stop)
		return fmt.Errorf("registering agent %s: the machine '%s' that it is running on is `DOWN`", id, machineJSON(ag.machineID()))
	}
	m.agents[id] = &agentEntry{info: info, handle: a, link: newAgentLink(), registered: m.clock.Now()}
	m.alloc.AddAgent(id, info.Resources)
	if u := m.unavailabilityOf(m.agents[id]); u != nil {
		m.alloc.UpdateUnavailability(id, u) // Mesos' addSlave passes the machine's unavailability
	}
	m.log.WithFields(logrus.Fields{"agent": id, "hostname": info.Hostname}).Info("agent registered")
	m.kick()
	return nil
}

func validateResources(rs mesos.Resources) error {
	for i := range rs {
		if err := rs[i].Validate(); err != nil {
			return fmt.Errorf("invalid resource %s: %w", rs[i].Name, err)
		}
	}
	return nil
}

// send delivers an event to a framework if it is connected.
func (f *framework) send(e *scheduler.Event) {
	if f.stream != nil {
		f.stream.send(e)
	}
}

func (m *Master) frameworkRoles(info *mesos.FrameworkInfo) []string {
	if hasCap(info, mesos.FrameworkInfo_Capability_MULTI_ROLE) {
		return append([]string(nil), info.Roles...)
	}
	if info.Role != nil && *info.Role != "" {
		return []string{*info.Role}
	}
	return []string{"*"}
}

func hasCap(info *mesos.FrameworkInfo, c mesos.FrameworkInfo_Capability_Type) bool {
	for _, cap := range info.Capabilities {
		if cap.Type == c {
			return true
		}
	}
	return false
}

// subscribe attaches a stream to a new or existing framework and sends SUBSCRIBED (or ERROR).
func (m *Master) subscribe(s *stream, sub *scheduler.Call_Subscribe) {
	m.lock()
	defer m.unlock()
	info := *sub.FrameworkInfo
	now := m.clock.Now()
	// Master::subscribe refuses an invalid FrameworkInfo with an ERROR event on the stream.
	refuse := validateFrameworkRoles(&info)
	if refuse == nil {
		refuse = validateSuppressedRoles(m.frameworkRoles(&info), sub.SuppressedRoles)
	}
	if refuse != nil {
		m.log.WithField("name", info.Name).Info("refusing subscription: " + refuse.Error())
		s.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: refuse.Error()}})
		s.close()
		return
	}
	var f *framework
	if info.ID != nil && info.ID.Value != "" {
		id := info.ID.Value
		for _, c := range m.completed {
			if c.id == id {
				s.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework has been removed"}})
				s.close()
				return
			}
		}
		f = m.frameworks[id]
		if f == nil {
			// Unknown ID: after a master failover a framework re-subscribes with the ID it had.
			f = newFramework(id, now)
			m.frameworks[id] = f
		} else {
			t := now
			f.reregTime = &t
			if f.failover != nil {
				f.failover.Stop()
				f.failover = nil
			}
			if f.stream != nil && f.stream != s {
				m.log.WithField("framework", id).Info("framework re-subscribed on a new stream, closing the old one")
				f.stream.send(&scheduler.Event{Type: scheduler.Event_ERROR, Error: &scheduler.Event_Error{Message: "Framework failed over"}})
				f.stream.close()
			}
			// Outstanding offers of the old subscription are rescinded.
			for oid := range f.offers {
				m.removeOffer(m.offers[oid], true, 0)
			}
		}
	} else {
		m.nextFw++
		f = newFramework(fmt.Sprintf("%s-%04d", m.info.ID, m.nextFw-1), now)
		m.frameworks[f.id] = f
	}
	info.ID = &mesos.FrameworkID{Value: f.id}
	f.info = info
	f.roles = m.frameworkRoles(&info)
	f.stream = s
	f.active = true
	f.unregTime = nil
	s.frameworkID = f.id
	m.alloc.AddFramework(f.id, f.roles, sub.SuppressedRoles)
	// Re-establish the accounting of running tasks and executors (needed after a master failover, harmless otherwise).
	hb := m.cfg.HeartbeatInterval.Seconds()
	mi := m.info
	s.send(&scheduler.Event{Type: scheduler.Event_SUBSCRIBED, Subscribed: &scheduler.Event_Subscribed{
		FrameworkID: &mesos.FrameworkID{Value: f.id}, HeartbeatIntervalSeconds: &hb, MasterInfo: &mi}})
	s.send(&scheduler.Event{Type: scheduler.Event_HEARTBEAT}) // Mesos' heartbeater beats once at start
	m.log.WithFields(logrus.Fields{"framework": f.id, "name": info.Name, "roles": f.roles, "stream": s.id}).Info("framework subscribed")
	m.kick()
}

func newFramework(id string, now time.Time) *framework {
	return &framework{
		id: id, registered: now,
		tasks: map[string]*task{}, unreachable: map[string]*task{},
		executors: map[string]map[string]mesos.ExecutorInfo{}, offers: map[string]bool{},
	}
}

// streamClosed is called when a subscription stream ends on the client side.
func (m *Master) streamClosed(s *stream) {
	m.lock()
	defer m.unlock()
	f := m.frameworks[s.frameworkID]
	if f == nil || f.stream != s {
		return
	}
	m.disconnect(f, true)
}

// disconnect deactivates a framework and, with startFailover, starts its failover timeout. (After a
// master failover frameworks are only known from their agents and wait, without a timer, for their
// schedulers to re-subscribe.)
func (m *Master) disconnect(f *framework, startFailover bool) {
	if f.stream != nil {
		f.stream.close()
		f.stream = nil
	}
	f.active = false
	t := m.clock.Now()
	f.unregTime = &t
	m.alloc.SetActive(f.id, false)
	for oid := range f.offers {
		m.removeOffer(m.offers[oid], true, 0)
	}
	m.removeFrameworkInverseOffers(f)
	if f.failover != nil {
		f.failover.Stop()
		f.failover = nil
	}
	if !startFailover {
		return
	}
	timeout := time.Duration(f.info.GetFailoverTimeout() * float64(time.Second))
	id := f.id
	m.log.WithFields(logrus.Fields{"framework": id, "failover_timeout": timeout}).Info("framework disconnected")
	f.failover = m.afterFunc(timeout, func() { m.failoverExpired(id, f) })
}

func (m *Master) failoverExpired(id string, f *framework) {
	m.lock()
	defer m.unlock()
	if cur := m.frameworks[id]; cur != f || f.stream != nil {
		return
	}
	m.log.WithField("framework", id).Info("framework failover timeout expired, removing it")
	m.removeFramework(f)
}

// removeFramework tears a framework down: its tasks are killed, its offers and executors go, and it
// moves to the completed frameworks.
func (m *Master) removeFramework(f *framework) {
	if f.removed {
		return
	}
	f.removed = true
	now := m.clock.Now()
	for oid := range f.offers {
		m.removeOffer(m.offers[oid], true, 0)
	}
	m.removeFrameworkInverseOffers(f)
	agentsWith := map[string]bool{}
	for _, t := range f.tasks {
		agentsWith[t.task.AgentID.Value] = true
		if !t.terminal {
			m.recoverTask(f, t)
			st := mesos.TASK_KILLED
			t.task.State = &st
		}
		f.addCompleted(t, m.cfg.MaxCompletedTasksPerFramework)
	}
	for aid, execs := range f.executors {
		agentsWith[aid] = true
		for _, e := range execs {
			m.alloc.Recover(aid, f.id, roleOf(e.Resources, f.roles), e.Resources, 0, now)
		}
	}
	f.tasks = map[string]*task{}
	f.executors = map[string]map[string]mesos.ExecutorInfo{}
	fid := mesos.FrameworkID{Value: f.id}
	for aid := range agentsWith {
		if ag := m.agents[aid]; ag != nil && !ag.unreachable {
			m.tell(ag, func(h Agent) { h.ShutdownFramework(fid) })
		}
	}
	if f.failover != nil {
		f.failover.Stop()
		f.failover = nil
	}
	if f.stream != nil {
		f.stream.close()
		f.stream = nil
	}
	f.active = false
	t := now
	f.unregTime = &t
	m.alloc.RemoveFramework(f.id)
	delete(m.frameworks, f.id)
	m.completed = append(m.completed, f)
	if len(m.completed) > m.cfg.MaxCompletedFrameworks {
		m.completed = m.completed[1:]
	}
}

func (f *framework) addCompleted(t *task, max int) {
	f.completed = append(f.completed, t)
	if len(f.completed) > max {
		f.completed = f.completed[1:]
	}
}

// roleOf is the allocation role carried by resources, or the framework's first role.
func roleOf(rs mesos.Resources, roles []string) string {
	for i := range rs {
		if rs[i].AllocationInfo != nil && rs[i].AllocationInfo.Role != nil {
			return *rs[i].AllocationInfo.Role
		}
	}
	if len(roles) > 0 {
		return roles[0]
	}
	return "*"
}

func (m *Master) recoverTask(f *framework, t *task) {
	if t.terminal {
		return
	}
	t.terminal = true
	m.alloc.Recover(t.task.AgentID.Value, f.id, t.role, t.task.Resources, 0, m.clock.Now())
}

// masterUpdate builds a status update generated by the master (no uuid: it must not be acknowledged).
func (m *Master) masterUpdate(taskID mesos.TaskID, agentID *mesos.AgentID, state mesos.TaskState, reason mesos.TaskStatus_Reason, msg string) *scheduler.Event {
	ts := float64(m.clock.Now().UnixNano()) / 1e9
	src := mesos.SOURCE_MASTER
	st := mesos.TaskStatus{
		TaskID: taskID, State: &state, Source: &src, Reason: &reason, Message: &msg, Timestamp: &ts,
	}
	if agentID != nil && agentID.Value != "" {
		a := *agentID
		st.AgentID = &a
	}
	return &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: st}}
}

// lostState maps a partition-aware state to what a framework without PARTITION_AWARE sees.
func lostState(f *framework, s mesos.TaskState) mesos.TaskState {
	if f.partitionAware() {
		return s
	}
	switch s {
	case mesos.TASK_DROPPED, mesos.TASK_UNREACHABLE, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR, mesos.TASK_UNKNOWN:
		return mesos.TASK_LOST
	}
	return s
}

func isTerminal(s mesos.TaskState) bool {
	switch s {
	case mesos.TASK_FINISHED, mesos.TASK_FAILED, mesos.TASK_KILLED, mesos.TASK_ERROR, mesos.TASK_LOST,
		mesos.TASK_DROPPED, mesos.TASK_GONE, mesos.TASK_GONE_BY_OPERATOR:
		return true
	}
	return false
}

// ----- agent → master (agent.Master) -----

// StatusUpdate forwards an agent's task status update to the framework (at-least-once: the agent resends
// until acknowledged) and updates the master's view of the task.
func (m *Master) StatusUpdate(agentID mesos.AgentID, frameworkID mesos.FrameworkID, status mesos.TaskStatus) {
	m.lock()
	defer m.unlock()
	if ag := m.agents[agentID.Value]; ag != nil && ag.unreachable {
		return // a partitioned agent's messages do not arrive
	}
	f := m.frameworks[frameworkID.Value]
	log := m.log.WithFields(logrus.Fields{"agent": agentID.Value, "framework": frameworkID.Value, "task": status.TaskID.Value, "state": status.GetState()})
	if f == nil {
		log.Debug("status update for unknown framework dropped")
		return
	}
	if status.AgentID == nil {
		a := agentID
		status.AgentID = &a
	}
	if t := f.tasks[status.TaskID.Value]; t != nil {
		st := status.GetState()
		t.task.State = &st
		t.task.StatusUpdateState = &st
		t.task.StatusUpdateUUID = status.UUID
		t.task.Statuses = appendStatus(t.task.Statuses, status)
		if isTerminal(st) {
			m.recoverTask(f, t)
			t.terminalUUID = status.UUID
		}
	} else {
		log.Debug("status update for a task the master does not know, forwarding anyway")
	}
	if f.stream == nil {
		log.Debug("framework disconnected, update not delivered (the agent retries)")
		return
	}
	ev := &scheduler.Event{Type: scheduler.Event_UPDATE, Update: &scheduler.Event_Update{Status: status}}
	s := f.stream
	switch {
	case m.faults.delay > 0:
		m.afterFunc(m.faults.delay, func() { s.send(ev) })
		if m.faults.duplicate {
			m.afterFunc(m.faults.delay, func() { s.send(ev) })
		}
	default:
		s.send(ev)
		if m.faults.duplicate {
			s.send(ev)
		}
	}
	log.Debug("forwarded status update")
}

func appendStatus(ss []mesos.TaskStatus, s mesos.TaskStatus) []mesos.TaskStatus {
	// Mesos keeps the latest status per state transition; keep a bounded history.
	ss = append(ss, s)
	if len(ss) > 10 {
		ss = ss[len(ss)-10:]
	}
	return ss
}

// ExecutorMessage forwards executor data to the framework (event MESSAGE).
func (m *Master) ExecutorMessage(agentID mesos.AgentID, frameworkID mesos.FrameworkID, executorID mesos.ExecutorID, data []byte) {
	m.lock()
	defer m.unlock()
	if ag := m.agents[agentID.Value]; ag != nil && ag.unreachable {
		return
	}
	if f := m.frameworks[frameworkID.Value]; f != nil {
		f.send(&scheduler.Event{Type: scheduler.Event_MESSAGE, Message: &scheduler.Event_Message{AgentID: agentID, ExecutorID: executorID, Data: data}})
	}
}

// ExecutorTerminated frees an executor's resources and sends FAILURE (agent, executor, status).
func (m *Master) ExecutorTerminated(agentID mesos.AgentID, frameworkID mesos.FrameworkID, executorID mesos.ExecutorID, status int32) {
	m.lock()
	defer m.unlock()
	f := m.frameworks[frameworkID.Value]
	if f == nil {
		return
	}
	e, ok := f.executors[agentID.Value][executorID.Value]
	if !ok {
		// Mesos' master ignores exits of executors it does not know (e.g. command executors, which
		// the agent generates for command tasks).
		m.log.WithFields(logrus.Fields{"agent": agentID.Value, "framework": f.id, "executor": executorID.Value}).Debug("ignoring exit of an unknown executor")
		return
	}
	delete(f.executors[agentID.Value], executorID.Value)
	if len(f.executors[agentID.Value]) == 0 {
		delete(f.executors, agentID.Value)
	}
	m.alloc.Recover(agentID.Value, f.id, roleOf(e.Resources, f.roles), e.Resources, 0, m.clock.Now())
	a, eid, st := agentID, executorID, status
	f.send(&scheduler.Event{Type: scheduler.Event_FAILURE, Failure: &scheduler.Event_Failure{AgentID: &a, ExecutorID: &eid, Status: &st}})
}

// ResourcesRecovered is accepted for the agent contract; the master already recovers task resources
// when it sees a terminal status update and executor resources on ExecutorTerminated, as Mesos' master
// does, so it only logs here.
func (m *Master) ResourcesRecovered(agentID mesos.AgentID, frameworkID mesos.FrameworkID, resources mesos.Resources) {
	m.log.WithFields(logrus.Fields{"agent": agentID.Value, "framework": frameworkID.Value, "resources": resources.String()}).Debug("agent reports recovered resources")
}

// ErrAgentExists is returned when an agent ID registers twice.
var ErrAgentExists = errors.New("agent already registered")

// ErrUnknownAgent is returned by fault verbs for an unknown agent ID.
var ErrUnknownAgent = errors.New("unknown agent")
