'use strict';
'require view';
'require rpc';
'require poll';
'require dom';
'require ui';
'require network';

/*
 * Live status of haig, from its ubus object (the same snapshot every haig
 * surface shows). The headline is written for the family at home; the
 * tables below it are for whoever looks after the router.
 *
 * Every string that comes from the daemon, the network or the config (names,
 * reasons, messages, addresses) goes into the page as a text node: LuCI's
 * E()/dom.content() and cbi_update_table() put a *lone string* in as HTML, so
 * such text is always wrapped with txt() (an array child = a text node).
 * Colours come from the theme's classes (label/alert-message + state), never
 * inline styles.
 */

const callStatus = rpc.declare({
	object: 'haig',
	method: 'status',
	expect: { '': {} }
});

const callEvents = rpc.declare({
	object: 'haig',
	method: 'events',
	params: [ 'since' ],
	expect: { '': {} }
});

const callSetPrimary = rpc.declare({
	object: 'haig',
	method: 'set_primary',
	params: [ 'uplink', 'duration' ],
	expect: { '': {} }
});

/* SCTP path state (status schema: uplinks[].state) -> theme label class and
 * word. A state the daemon adds later gets the neutral label. */
const STATE_CLASSES = {
	active: 'label success',
	standby: 'label notice',
	pf: 'label warning',
	unreachable: 'label danger',
	down: 'label danger',
	removed: 'label danger',
	unconfirmed: 'label'
};
const HEADLINE_CLASSES = { ok: 'success', backup: 'warning', down: 'danger' };

/* Untrusted text as a text node (never parsed as HTML). */
function txt(s) {
	return E('span', {}, [ (s == null) ? '' : String(s) ]);
}

const MAX_EVENTS = 50;
const FORCE_SECONDS = 3600;

/* Network protocols that mean a mobile (3G/LTE/5G) connection. */
const MOBILE_PROTOS = [ '3g', 'qmi', 'mbim', 'ncm', 'modemmanager', 'wwan', 'directip', 'quectel' ];
const DSL_PROTOS = [ 'pppoe', 'pppoa' ];

return view.extend({
	protos: {},
	events: [],
	lastSeq: 0,

	load() {
		return Promise.all([
			L.resolveDefault(callStatus(), null),
			L.resolveDefault(network.getNetworks(), [])
		]);
	},

	/* A word people know for an uplink: DSL, LTE, or the uplink's name. */
	uplinkLabel(uplink) {
		const proto = this.protos[uplink.interface] || '';

		if (MOBILE_PROTOS.indexOf(proto) >= 0)
			return _('LTE');
		if (DSL_PROTOS.indexOf(proto) >= 0)
			return _('DSL');
		/* as the daemon names uplinks to people: dsl -> DSL, lte -> LTE */
		return /^[a-z0-9]{1,4}$/.test(uplink.name) ? uplink.name.toUpperCase() : uplink.name;
	},

	/* { level: 'ok' | 'backup' | 'down', text, detail } from a snapshot. */
	headline(st) {
		if (!st || !Array.isArray(st.uplinks))
			return { level: 'down', text: _('Not connected'),
			         detail: _('The haig service is not running.') };

		const summary = st.summary || {};
		const assocs = st.associations || [];

		if (st.role == 'endpoint') {
			const n = assocs.filter(a => a.state == 'up').length;
			return (n == 0)
				? { level: 'down', text: _('No gateway connected'), detail: '' }
				: { level: 'ok', text: (n == 1) ? _('1 gateway connected') : _('%d gateways connected').format(n), detail: '' };
		}

		const primary = st.uplinks.filter(u => u.name == st.primary)[0];
		const connected = (summary.connected != null) ? summary.connected
			: !!primary && primary.healthy && !assocs.some(a => a.state != 'up');

		if (!connected || !primary)
			return { level: 'down', text: _('Not connected'),
			         detail: _('No internet connection reaches the hospital at the moment.') };

		const best = Math.min.apply(null, st.uplinks.map(u => u.metric));
		const onBackup = (summary.on_backup != null) ? summary.on_backup : primary.metric > best;
		const label = this.uplinkLabel(primary);

		if (onBackup)
			return { level: 'backup', text: _('Connected, on %s backup').format(label),
			         detail: _('The main connection is down; the backup line carries the traffic.') };

		return { level: 'ok', text: _('Connected via %s').format(label),
		         detail: _('Everything is working.') };
	},

	stateBadge(uplink) {
		const words = {
			active: _('active'),
			standby: _('standby'),
			pf: _('failing'),
			unreachable: _('unreachable'),
			down: _('down'),
			removed: _('removed'),
			unconfirmed: _('checking')
		};
		const known = Object.prototype.hasOwnProperty.call(STATE_CLASSES, uplink.state);

		return E('span', {
			'class': known ? STATE_CLASSES[uplink.state] : 'label',
			'data-state': String(uplink.state)
		}, [ known ? words[uplink.state] : String(uplink.state || _('unknown')) ]);
	},

	ms(v) {
		return (v == null) ? '-' : '%d ms'.format(v);
	},

	bytes(v) {
		return (v == null) ? '-' : '%1024.2mB'.format(v);
	},

	when(t) {
		return t ? new Date(t * 1000).toLocaleString() : '-';
	},

	eventText(ev) {
		switch (ev.kind) {
		case 'failover':
			return _('Switched from %s to %s').format(ev.old || '-', ev.new || '-');
		case 'failback':
			return _('Back on %s').format(ev.new || '-');
		case 'path_state':
			return _('%s: %s → %s').format(ev.subject, ev.old || '-', ev.new || '-');
		case 'link':
			return _('%s link: %s').format(ev.subject, ev.new || '-');
		case 'assoc':
			return _('Link to the hospital: %s').format(ev.new || '-');
		case 'config':
			return _('Configuration: %s').format(ev.new || '-');
		case 'drop':
			return _('Datagrams dropped');
		case 'endpoint_switch':
			return (ev.new == 'standby') ? _('Switched to the standby hospital endpoint')
				: _('Back on the primary hospital endpoint');
		default:
			return '%s %s'.format(ev.kind, ev.subject);
		}
	},

	handleForce(uplink, duration, ev) {
		return callSetPrimary(uplink, duration).then(res => {
			if (res && res.error)
				ui.addNotification(null, E('p', {}, [ String(res.error) ]), 'error');
		}).catch(err => {
			ui.addNotification(null, E('p', {}, [ _('Could not change the uplink: %s').format(err.message || err) ]), 'error');
		});
	},

	mergeEvents(list) {
		(list || []).forEach(ev => {
			if (ev.seq > this.lastSeq) {
				this.events.push(ev);
				this.lastSeq = ev.seq;
			}
		});
		if (this.events.length > MAX_EVENTS)
			this.events = this.events.slice(-MAX_EVENTS);
	},

	renderHeadline(st) {
		const h = this.headline(st);
		const children = [
			E('div', { 'class': 'alert-message ' + HEADLINE_CLASSES[h.level] }, [
				E('h3', {}, [ h.text ]),
				E('p', {}, [ h.detail ])
			])
		];

		if (st && st.config && st.config.ok === false)
			children.push(E('div', { 'class': 'alert-message warning' }, [
				_('The last configuration change was rejected; the previous settings are still in use: %s').format(st.config.message)
			]));

		return E('div', { 'class': 'cbi-section', 'id': 'haig-headline', 'data-level': h.level }, children);
	},

	renderUplinks(st) {
		const rows = (st.uplinks || []).map(u => [
			E('span', {}, [ u.primary ? E('strong', {}, [ u.name + ' ★' ]) : String(u.name) ]),
			txt(u.interface),
			this.stateBadge(u),
			u.metric,
			this.ms(u.srtt_ms),
			this.ms(u.rto_ms),
			(u.cwnd == null) ? '-' : u.cwnd,
			this.bytes(u.tx_bytes),
			this.bytes(u.rx_bytes),
			u.metered ? _('yes') : _('no'),
			E('div', {}, [
				E('button', {
					'class': 'btn cbi-button',
					'title': _('Carry all traffic on this uplink for one hour'),
					'click': ui.createHandlerFn(this, 'handleForce', u.name, FORCE_SECONDS)
				}, _('Use now')),
				' ',
				E('button', {
					'class': 'btn cbi-button',
					'title': _('Let haig choose the uplink again'),
					'click': ui.createHandlerFn(this, 'handleForce', u.name, 0)
				}, _('Automatic'))
			])
		]);

		const table = E('table', { 'class': 'table', 'id': 'haig-uplinks' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				_('Uplink'), _('Interface'), _('State'), _('Metric'), _('SRTT'), _('RTO'),
				_('Congestion window'), _('Sent'), _('Received'), _('Metered'), ''
			].map(t => E('th', { 'class': 'th' }, t)))
		]);

		cbi_update_table(table, rows, E('em', _('No uplinks configured.')));

		return E('div', { 'class': 'cbi-section' }, [ E('h3', _('Uplinks')), table ]);
	},

	/* Which hospital endpoint the link goes to: the primary, or the standby. */
	renderEndpoint(ep) {
		if (!ep)
			return E([]);
		const where = '%s:%d'.format(ep.address || '-', ep.port);
		let text = (ep.in_use == 'standby')
			? _('Endpoint in use: standby %s (the primary does not answer)').format(where)
			: _('Endpoint in use: primary %s').format(where);
		if (ep.in_use == 'standby' && ep.return_in_s != null)
			text += ' ' + _('The primary answers again; back to it in %d s.').format(ep.return_in_s);
		return E('p', { 'id': 'haig-endpoint', 'data-endpoint': String(ep.in_use),
		               'class': (ep.in_use == 'standby') ? 'label warning' : '' }, [ text ]);
	},

	renderAssociations(st) {
		const rows = (st.associations || []).map(a => [
			txt(a.key),
			txt(a.state),
			txt(a.auth === true ? _('on') : a.auth === false ? _('off') : '-'),
			txt(this.when(a.since)),
			txt(a.primary || '-'),
			txt((a.paths || []).map(p => '%s (%s)'.format(p.address, p.state)).join(', ') || '-')
		]);
		const table = E('table', { 'class': 'table' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				_('Peer'), _('State'), _('SCTP-AUTH'), _('Since'), _('Primary path'), _('Paths')
			].map(t => E('th', { 'class': 'th' }, t)))
		]);

		cbi_update_table(table, rows, E('em', _('No association.')));

		const drops = Object.keys(st.drops || {}).reduce((n, k) => n + (st.drops[k] || 0), 0);

		return E('div', { 'class': 'cbi-section' }, [
			E('h3', _('Link to the hospital')),
			this.renderEndpoint(st.endpoint),
			table,
			E('p', {}, [ _('Datagrams dropped since start: %d').format(drops) ])
		]);
	},

	renderTimeline() {
		const rows = this.events.slice().reverse().map(ev => [
			txt(this.when(ev.t)),
			txt(this.eventText(ev)),
			txt(ev.reason || '')
		]);
		const table = E('table', { 'class': 'table', 'id': 'haig-events' }, [
			E('tr', { 'class': 'tr table-titles' }, [
				_('Time'), _('What happened'), _('Why')
			].map(t => E('th', { 'class': 'th' }, t)))
		]);

		cbi_update_table(table, rows, E('em', _('Nothing has happened yet.')));

		return E('div', { 'class': 'cbi-section' }, [ E('h3', _('Failover timeline')), table ]);
	},

	renderAll(st) {
		const parts = [ this.renderHeadline(st) ];

		if (st && Array.isArray(st.uplinks)) {
			if (st.role != 'endpoint')
				parts.push(this.renderUplinks(st));
			parts.push(this.renderAssociations(st), this.renderTimeline());
		}

		return parts;
	},

	refresh(container) {
		return Promise.all([
			L.resolveDefault(callStatus(), null),
			L.resolveDefault(callEvents(this.lastSeq), null)
		]).then(([ st, evs ]) => {
			if (st)
				this.mergeEvents(st.events);
			if (evs)
				this.mergeEvents(evs.events);
			dom.content(container, this.renderAll(st));
		});
	},

	render([ st, networks ]) {
		(networks || []).forEach(n => { this.protos[n.getName()] = n.getProtocol(); });

		if (st)
			this.mergeEvents(st.events);

		const container = E('div', { 'id': 'haig-status' }, this.renderAll(st));

		poll.add(() => this.refresh(container), 5);

		return E([], [
			E('h2', _('HaIG: internet link to the hospital')),
			container
		]);
	},

	handleSaveApply: null,
	handleSave: null,
	handleReset: null
});
