package mesossim

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/netip"
	"sort"
	"strconv"

	mesos "github.com/mesos/mesos-go/api/v1/lib"
	mesosalloc "github.com/mesos/mesos-go/api/v1/lib/allocator"
	"github.com/mesos/mesos-go/api/v1/lib/maintenance"
	"github.com/mesos/mesos-go/api/v1/lib/master"
	"github.com/mesos/mesos-go/api/v1/lib/scheduler"
	"github.com/sirupsen/logrus"

	"github.com/kubemesos/kubemesos/mesossim/internal/mesosjson"
)

// Maintenance primitives as Mesos' master implements them (src/master/maintenance.cpp, http.cpp,
// master.cpp): one schedule of windows; a scheduled machine is DRAINING, its agents' offers carry its
// unavailability and the frameworks using it get inverse offers; START_MAINTENANCE takes DRAINING
// machines DOWN (their agents are shut down and removed, and may not register while DOWN);
// STOP_MAINTENANCE brings DOWN machines UP and out of the schedule. A machine is an agent's hostname
// and the IP of its PID, both compared exactly.

type machineMode int

const (
	machineUp machineMode = iota
	machineDraining
	machineDown
)

type machine struct {
	id             mesos.MachineID
	mode           machineMode
	unavailability *mesos.Unavailability
}

type inverseOffer struct {
	offer mesos.InverseOffer
	timer interface{ Stop() bool }
}

// maintenanceState is the master's maintenance bookkeeping, under Master.mu.
type maintenanceState struct {
	machines map[string]*machine // by machineKey
	schedule *maintenance.Schedule
	inverse  map[string]*inverseOffer
}

func machineKey(id mesos.MachineID) string { return id.GetHostname() + "\x00" + id.GetIP() }

// machineJSON is stringify(JSON::protobuf(id)), as Mesos' error texts show a machine.
func machineJSON(id mesos.MachineID) string {
	v := struct {
		Hostname string `json:"hostname,omitempty"`
		IP       string `json:"ip,omitempty"`
	}{id.GetHostname(), id.GetIP()}
	b, _ := json.Marshal(v)
	return string(b)
}

func (ag *agentEntry) machineID() mesos.MachineID {
	h, ip := ag.info.Hostname, ag.ip()
	return mesos.MachineID{Hostname: &h, IP: &ip}
}

func (m *Master) machines() map[string]*machine {
	if m.maint.machines == nil {
		m.maint.machines = map[string]*machine{}
		m.maint.inverse = map[string]*inverseOffer{}
	}
	return m.maint.machines
}

// knownMachine is `master->machines.contains(id)`: Mesos keeps a machine for every registered agent
// and every scheduled machine.
func (m *Master) knownMachine(key string) bool {
	if m.machines()[key] != nil {
		return true
	}
	for _, ag := range m.agents {
		if machineKey(ag.machineID()) == key {
			return true
		}
	}
	return false
}

// agentsOn returns the registered agents of a machine, by ID.
func (m *Master) agentsOn(key string) []*agentEntry {
	var out []*agentEntry
	for _, id := range sortedKeys(m.agents) {
		if ag := m.agents[id]; machineKey(ag.machineID()) == key {
			out = append(out, ag)
		}
	}
	return out
}

// unavailabilityOf is the unavailability an offer of the agent carries (nil: none).
func (m *Master) unavailabilityOf(ag *agentEntry) *mesos.Unavailability {
	mc := m.machines()[machineKey(ag.machineID())]
	if mc == nil || mc.unavailability == nil {
		return nil
	}
	u := *mc.unavailability
	return &u
}

// machineDown reports whether an agent's machine is DOWN: it may not register.
func (m *Master) machineDown(hostname, ip string) bool {
	mc := m.machines()[machineKey(mesos.MachineID{Hostname: &hostname, IP: &ip})]
	return mc != nil && mc.mode == machineDown
}

// validateMachine is maintenance::validation::machine.
func validateMachine(id mesos.MachineID) error {
	if id.GetHostname() == "" && id.GetIP() == "" {
		return fmt.Errorf("Both 'hostname' and 'ip' for a machine are empty")
	}
	if ip := id.GetIP(); ip != "" {
		if a, err := netip.ParseAddr(ip); err != nil || !a.Is4() {
			return fmt.Errorf("Failed to parse IPv4: %s", ip)
		}
	}
	return nil
}

// validateSchedule is maintenance::validation::schedule.
func (m *Master) validateSchedule(s *maintenance.Schedule) error {
	updated := map[string]bool{}
	for _, w := range s.Windows {
		if len(w.MachineIDs) == 0 {
			return fmt.Errorf("List of machines in the maintenance window is empty")
		}
		if w.Unavailability.Duration != nil && w.Unavailability.Duration.Nanoseconds < 0 {
			return fmt.Errorf("Unavailability 'duration' is negative")
		}
		for _, id := range w.MachineIDs {
			if err := validateMachine(id); err != nil {
				return err
			}
			if updated[machineKey(id)] {
				return fmt.Errorf("Machine '%s' appears more than once in the schedule", machineJSON(id))
			}
			updated[machineKey(id)] = true
		}
	}
	for _, k := range sortedKeys(m.machines()) {
		if mc := m.machines()[k]; mc.mode == machineDown && !updated[k] {
			return fmt.Errorf("Machine '%s' is deactivated and cannot be removed from the schedule", machineJSON(mc.id))
		}
	}
	return nil
}

// validateMachines is maintenance::validation::machines.
func validateMachines(ids []mesos.MachineID) error {
	if len(ids) == 0 {
		return fmt.Errorf("List of machines is empty")
	}
	seen := map[string]bool{}
	for _, id := range ids {
		if err := validateMachine(id); err != nil {
			return err
		}
		if seen[machineKey(id)] {
			return fmt.Errorf("Machine '%s' appears more than once in the schedule", machineJSON(id))
		}
		seen[machineKey(id)] = true
	}
	return nil
}

// UpdateMaintenanceSchedule replaces the schedule (UPDATE_MAINTENANCE_SCHEDULE, POST
// /maintenance/schedule); the error is Mesos' 400 text.
func (m *Master) UpdateMaintenanceSchedule(s maintenance.Schedule) error {
	m.lock()
	defer m.unlock()
	if err := m.validateSchedule(&s); err != nil {
		return err
	}
	unav := map[string]mesos.Unavailability{}
	for _, w := range s.Windows {
		for _, id := range w.MachineIDs {
			unav[machineKey(id)] = w.Unavailability
		}
	}
	machines := m.machines()
	for _, k := range sortedKeys(machines) {
		mc := machines[k]
		if u, ok := unav[k]; ok {
			if mc.mode == machineUp {
				continue // UP to DRAINING: below
			}
			m.updateUnavailability(mc, &u)
			continue
		}
		mc.mode = machineUp
		m.updateUnavailability(mc, nil)
		delete(machines, k) // an UP machine without unavailability is what every agent's machine is
	}
	for _, w := range s.Windows {
		for _, id := range w.MachineIDs {
			k := machineKey(id)
			if mc := machines[k]; mc != nil && mc.mode != machineUp {
				continue
			}
			mc := &machine{id: id, mode: machineDraining}
			machines[k] = mc
			u := w.Unavailability
			m.updateUnavailability(mc, &u)
		}
	}
	m.maint.schedule = &s
	if len(s.Windows) == 0 {
		m.maint.schedule = nil
	}
	m.log.WithField("windows", len(s.Windows)).Info("maintenance schedule updated")
	m.kick()
	return nil
}

// updateUnavailability is Master::updateUnavailability: the machine's agents' offers and inverse
// offers are rescinded and the allocator learns the new unavailability.
func (m *Master) updateUnavailability(mc *machine, u *mesos.Unavailability) {
	mc.unavailability = u
	for _, ag := range m.agentsOn(machineKey(mc.id)) {
		id := ag.info.ID.Value
		for _, oid := range sortedKeys(m.offers) {
			if o := m.offers[oid]; o.offer.AgentID.Value == id {
				m.rescind(o, true, 0)
			}
		}
		for _, ioid := range sortedKeys(m.maint.inverse) {
			io := m.maint.inverse[ioid]
			if io.offer.AgentID.Value == id {
				m.alloc.UpdateInverseOffer(id, io.offer.FrameworkID.Value, nil, 0, m.clock.Now())
				m.removeInverseOffer(io, true)
			}
		}
		m.alloc.UpdateUnavailability(id, u)
	}
}

// removeInverseOffer forgets an inverse offer; with rescind the framework gets RESCIND_INVERSE_OFFER.
func (m *Master) removeInverseOffer(io *inverseOffer, rescind bool) {
	delete(m.maint.inverse, io.offer.OfferID.Value)
	if io.timer != nil {
		io.timer.Stop()
	}
	f := m.frameworks[io.offer.FrameworkID.Value]
	if f == nil {
		return
	}
	delete(f.inverseOffers, io.offer.OfferID.Value)
	if rescind && f.stream != nil {
		f.stream.send(&scheduler.Event{Type: scheduler.Event_RESCIND_INVERSE_OFFER,
			RescindInverseOffer: &scheduler.Event_RescindInverseOffer{InverseOfferID: io.offer.OfferID}})
	}
}

// sendInverseOffers makes the allocator's inverse offers and sends them (Master::inverseOffer), after
// an allocation cycle's offers.
func (m *Master) sendInverseOffers() {
	now := m.clock.Now()
	byFw := map[string][]mesos.InverseOffer{}
	var order []string
	for _, d := range m.alloc.InverseOffers(now) {
		f := m.frameworks[d.FrameworkID]
		ag := m.agents[d.AgentID]
		switch {
		case f == nil || f.stream == nil:
			m.alloc.UpdateInverseOffer(d.AgentID, d.FrameworkID, nil, 0, now) // not connected: not sent
			continue
		case ag == nil || ag.unreachable:
			m.alloc.UpdateInverseOffer(d.AgentID, d.FrameworkID, nil, 0, now)
			continue
		case m.unavailabilityOf(ag) == nil:
			m.log.WithFields(logrus.Fields{"framework": f.id, "agent": d.AgentID}).Info("dropping inverse offer: the agent had its unavailability revoked")
			continue
		}
		m.nextOffer++
		id := fmt.Sprintf("%s-O%d", m.info.ID, m.nextOffer)
		io := &inverseOffer{offer: mesos.InverseOffer{
			OfferID:     mesos.OfferID{Value: id},
			FrameworkID: mesos.FrameworkID{Value: f.id},
			AgentID:     &mesos.AgentID{Value: d.AgentID},
			URL: &mesos.URL{Scheme: "http", Address: mesos.Address{
				Hostname: strPtr(ag.info.Hostname), IP: strPtr(ag.ip()), Port: ag.info.GetPort()}, Path: strPtr("/slave(1)")},
			Unavailability: d.Unavailability,
		}}
		if m.cfg.OfferTimeout > 0 {
			io.timer = m.afterFunc(m.cfg.OfferTimeout, func() { m.inverseOfferTimedOut(id) })
		}
		m.maint.inverse[id] = io
		if f.inverseOffers == nil {
			f.inverseOffers = map[string]bool{}
		}
		f.inverseOffers[id] = true
		if _, ok := byFw[f.id]; !ok {
			order = append(order, f.id)
		}
		byFw[f.id] = append(byFw[f.id], io.offer)
	}
	for _, fid := range order {
		m.frameworks[fid].stream.send(&scheduler.Event{Type: scheduler.Event_INVERSE_OFFERS,
			InverseOffers: &scheduler.Event_InverseOffers{InverseOffers: byFw[fid]}})
		m.log.WithFields(logrus.Fields{"framework": fid, "inverseOffers": len(byFw[fid])}).Info("sent inverse offers")
	}
}

func (m *Master) inverseOfferTimedOut(id string) {
	m.lock()
	defer m.unlock()
	if io := m.maint.inverse[id]; io != nil {
		m.alloc.UpdateInverseOffer(io.offer.AgentID.Value, io.offer.FrameworkID.Value, nil, 0, m.clock.Now())
		m.removeInverseOffer(io, true)
	}
}

// answerInverseOffers is Master::acceptInverseOffers and declineInverseOffers: each inverse offer still
// outstanding records the framework's answer and installs its refuse filter (Filters' default 5s);
// unknown ones are ignored, as Mesos only logs them.
func (m *Master) answerInverseOffers(f *framework, ids []mesos.OfferID, filters *mesos.Filters, accept bool) {
	st := mesosalloc.InverseOfferStatus_DECLINE
	if accept {
		st = mesosalloc.InverseOfferStatus_ACCEPT
	}
	if len(ids) == 0 && accept {
		m.log.WithField("framework", f.id).Warn("ACCEPT_INVERSE_OFFERS call used invalid offers '[  ]': No inverse offers specified")
		return
	}
	now := m.clock.Now()
	for _, id := range ids {
		io := m.maint.inverse[id.Value]
		if io == nil {
			m.log.WithFields(logrus.Fields{"framework": f.id, "inverseOffer": id.Value}).Warn("ignoring answer to inverse offer: it is no longer valid")
			continue
		}
		status := mesosalloc.InverseOfferStatus{Status: st.Enum(), FrameworkID: io.offer.FrameworkID, Timestamp: mesos.TimeInfo{Nanoseconds: now.UnixNano()}}
		m.alloc.UpdateInverseOffer(io.offer.AgentID.Value, io.offer.FrameworkID.Value, &status, refuseOf(filters), now)
		m.removeInverseOffer(io, false)
	}
}

// removeFrameworkInverseOffers drops a framework's inverse offers (it is gone or disconnected).
func (m *Master) removeFrameworkInverseOffers(f *framework) {
	for _, id := range sortedKeys(f.inverseOffers) {
		if io := m.maint.inverse[id]; io != nil {
			m.alloc.UpdateInverseOffer(io.offer.AgentID.Value, f.id, nil, 0, m.clock.Now())
			m.removeInverseOffer(io, false)
		}
	}
}

// StartMaintenance takes DRAINING machines DOWN (START_MAINTENANCE, POST /machine/down): their agents
// are shut down and removed.
func (m *Master) StartMaintenance(ids []mesos.MachineID) error {
	m.lock()
	defer m.unlock()
	if err := validateMachines(ids); err != nil {
		return err
	}
	for _, id := range ids {
		k := machineKey(id)
		if !m.knownMachine(k) {
			return fmt.Errorf("Machine '%s' is not part of a maintenance schedule", machineJSON(id))
		}
		if mc := m.machines()[k]; mc == nil || mc.mode != machineDraining {
			return fmt.Errorf("Machine '%s' is not in DRAINING mode and cannot be brought down", machineJSON(id))
		}
	}
	for _, id := range ids {
		for _, ag := range m.agentsOn(machineKey(id)) {
			m.removeAgent(ag, mesos.TASK_GONE_BY_OPERATOR, "Operator initiated 'Machine DOWN'", true)
		}
		m.machines()[machineKey(id)].mode = machineDown
	}
	return nil
}

// StopMaintenance brings DOWN machines UP and takes them out of the schedule (STOP_MAINTENANCE, POST
// /machine/up).
func (m *Master) StopMaintenance(ids []mesos.MachineID) error {
	m.lock()
	defer m.unlock()
	if err := validateMachines(ids); err != nil {
		return err
	}
	for _, id := range ids {
		k := machineKey(id)
		if !m.knownMachine(k) {
			return fmt.Errorf("Machine '%s' is not part of a maintenance schedule", machineJSON(id))
		}
		if mc := m.machines()[k]; mc == nil || mc.mode != machineDown {
			return fmt.Errorf("Machine '%s' is not in DOWN mode and cannot be brought up", machineJSON(id))
		}
	}
	up := map[string]bool{}
	for _, id := range ids {
		up[machineKey(id)] = true
		delete(m.machines(), machineKey(id))
	}
	if s := m.maint.schedule; s != nil {
		var windows []maintenance.Window
		for _, w := range s.Windows {
			var kept []mesos.MachineID
			for _, id := range w.MachineIDs {
				if !up[machineKey(id)] {
					kept = append(kept, id)
				}
			}
			if len(kept) > 0 {
				w.MachineIDs = kept
				windows = append(windows, w)
			}
		}
		s.Windows = windows
		if len(windows) == 0 {
			m.maint.schedule = nil
		}
	}
	return nil
}

// MaintenanceSchedule returns the schedule (GET_MAINTENANCE_SCHEDULE).
func (m *Master) MaintenanceSchedule() maintenance.Schedule {
	m.lock()
	defer m.unlock()
	if m.maint.schedule == nil {
		return maintenance.Schedule{}
	}
	return *m.maint.schedule
}

// MaintenanceStatus returns the DRAINING machines with the frameworks' answers and the DOWN machines
// (GET_MAINTENANCE_STATUS).
func (m *Master) MaintenanceStatus() maintenance.ClusterStatus {
	m.lock()
	defer m.unlock()
	var st maintenance.ClusterStatus
	machines := m.machines()
	keys := sortedKeys(machines)
	sort.Strings(keys)
	for _, k := range keys {
		mc := machines[k]
		switch mc.mode {
		case machineDraining:
			dm := maintenance.ClusterStatus_DrainingMachine{ID: mc.id}
			for _, ag := range m.agentsOn(k) {
				dm.Statuses = append(dm.Statuses, m.alloc.InverseOfferStatuses(ag.info.ID.Value)...)
			}
			st.DrainingMachines = append(st.DrainingMachines, dm)
		case machineDown:
			st.DownMachines = append(st.DownMachines, mc.id)
		}
	}
	return st
}

// maintenanceCall answers the operator API's maintenance calls: the response, or a status and text.
func (m *Master) maintenanceCall(call *master.Call) (*master.Response, int, string) {
	switch call.Type {
	case master.Call_GET_MAINTENANCE_STATUS:
		st := m.MaintenanceStatus()
		return &master.Response{Type: master.Response_GET_MAINTENANCE_STATUS,
			GetMaintenanceStatus: &master.Response_GetMaintenanceStatus{Status: st}}, 0, ""
	case master.Call_GET_MAINTENANCE_SCHEDULE:
		s := m.MaintenanceSchedule()
		return &master.Response{Type: master.Response_GET_MAINTENANCE_SCHEDULE,
			GetMaintenanceSchedule: &master.Response_GetMaintenanceSchedule{Schedule: s}}, 0, ""
	case master.Call_UPDATE_MAINTENANCE_SCHEDULE:
		if call.UpdateMaintenanceSchedule == nil {
			return nil, http.StatusBadRequest, "Failed to validate master::Call: Expecting 'update_maintenance_schedule' to be present"
		}
		if err := m.UpdateMaintenanceSchedule(call.UpdateMaintenanceSchedule.Schedule); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	case master.Call_START_MAINTENANCE:
		if call.StartMaintenance == nil {
			return nil, http.StatusBadRequest, "Failed to validate master::Call: Expecting 'start_maintenance' to be present"
		}
		if err := m.StartMaintenance(call.StartMaintenance.Machines); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	case master.Call_STOP_MAINTENANCE:
		if call.StopMaintenance == nil {
			return nil, http.StatusBadRequest, "Failed to validate master::Call: Expecting 'stop_maintenance' to be present"
		}
		if err := m.StopMaintenance(call.StopMaintenance.Machines); err != nil {
			return nil, http.StatusBadRequest, err.Error()
		}
	}
	return nil, http.StatusOK, ""
}

// serveMaintenanceSchedule is /maintenance/schedule: GET the schedule as JSON, POST a new one.
func (m *Master) serveMaintenanceSchedule(w http.ResponseWriter, r *http.Request) {
	switch r.Method {
	case http.MethodGet:
		s := m.MaintenanceSchedule()
		b, err := encodeAs(mediaJSON, &s)
		if err != nil {
			httpError(w, http.StatusInternalServerError, err.Error())
			return
		}
		writeRaw(w, b)
	case http.MethodPost:
		var s maintenance.Schedule
		if status, msg := decodeJSONInto(r, &s); status != 0 {
			httpError(w, status, msg)
			return
		}
		if err := m.UpdateMaintenanceSchedule(s); err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusOK)
	default:
		methodNotAllowed(w, r)
	}
}

// serveMaintenanceStatus is /maintenance/status.
func (m *Master) serveMaintenanceStatus(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		methodNotAllowed(w, r)
		return
	}
	st := m.MaintenanceStatus()
	b, err := encodeAs(mediaJSON, &st)
	if err != nil {
		httpError(w, http.StatusInternalServerError, err.Error())
		return
	}
	writeRaw(w, b)
}

// serveMachines is /machine/down (up false) and /machine/up: a JSON array of MachineIDs.
func (m *Master) serveMachines(up bool) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost {
			methodNotAllowed(w, r)
			return
		}
		body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		var raw []json.RawMessage
		if err := json.Unmarshal(body, &raw); err != nil {
			httpError(w, http.StatusBadRequest, "Failed to parse JSON array: "+err.Error())
			return
		}
		ids := make([]mesos.MachineID, len(raw))
		for i, item := range raw {
			v, err := mesosjson.Parse(item)
			if err == nil {
				_, err = mesosjson.Convert(v, &ids[i])
			}
			if err != nil {
				httpError(w, http.StatusBadRequest, err.Error())
				return
			}
		}
		if up {
			err = m.StopMaintenance(ids)
		} else {
			err = m.StartMaintenance(ids)
		}
		if err != nil {
			httpError(w, http.StatusBadRequest, err.Error())
			return
		}
		w.WriteHeader(http.StatusOK)
	}
}

func decodeJSONInto(r *http.Request, msg message) (int, string) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBody))
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	v, err := mesosjson.Parse(body)
	if err != nil {
		return http.StatusBadRequest, err.Error()
	}
	if _, err := mesosjson.Convert(v, msg); err != nil {
		return http.StatusBadRequest, err.Error()
	}
	return 0, ""
}

func writeRaw(w http.ResponseWriter, b []byte) {
	w.Header().Set("Content-Type", mediaJSON)
	w.Header().Set("Content-Length", strconv.Itoa(len(b)))
	_, _ = w.Write(b)
}
