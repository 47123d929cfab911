'use strict';
'require view';
'require form';
'require uci';
'require tools.widgets as widgets';

/*
 * Settings of /etc/config/haig. Option names, defaults and ranges follow
 * haig/config/model.py (tests/unit/test_luci.py holds the two together).
 * Saving commits the file; the init script's reload trigger then sends the
 * daemon SIGHUP, and a rejected config leaves the running one in place.
 */

/* Integer option with the model's range. */
function intOption(s, tab, name, title, lo, hi, dflt, description) {
	const o = s.taboption(tab, form.Value, name, title, description);
	o.datatype = 'and(uinteger,range(%d,%d))'.format(lo, hi);
	o.placeholder = String(dflt);
	return o;
}

return view.extend({
	load() {
		return uci.load('haig');
	},

	render() {
		let m, s, o;

		m = new form.Map('haig', _('HaIG settings'),
			_('haig keeps the link to the hospital up over several internet connections (for example DSL and LTE): traffic uses the preferred connection and moves to a backup within about a second when it fails.'));

		/* --- config haig 'main' ------------------------------------------ */
		s = m.section(form.NamedSection, 'main', 'haig', _('General'));
		s.addremove = false;
		s.tab('general', _('General'));
		s.tab('timing', _('Failover timing'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('general', form.ListValue, 'role', _('Role'));
		o.value('gateway', _('Gateway (the router at home)'));
		o.value('endpoint', _('Endpoint (the hospital server)'));
		o.default = 'gateway';

		o = s.taboption('general', form.Value, 'gateway_id', _('Gateway ID'),
			_('This home\'s identity, as the hospital endpoint knows it (letters, digits, _).'));
		o.datatype = 'uciname';
		o.depends('role', 'gateway');

		o = s.taboption('general', form.Value, 'key', _('Shared key'),
			_('Secret shared with the endpoint, at least 16 characters.'));
		o.password = true;
		o.datatype = 'minlength(16)';
		o.depends('role', 'gateway');

		o = intOption(s, 'general', 'port', _('Endpoint SCTP port'), 1, 65535, 8888);

		o = intOption(s, 'general', 'standby_port', _('Standby endpoint SCTP port'), 0, 65535, 0,
			_('Port of the standby endpoint (the uplinks\' standby addresses); 0 = the same as the endpoint port.'));
		o.depends('role', 'gateway');

		o = s.taboption('general', form.DynamicList, 'bind', _('Local addresses'),
			_('Endpoint role: addresses of the SCTP socket, one per uplink served.'));
		o.datatype = 'ipaddr(1)';
		o.depends('role', 'endpoint');

		o = intOption(s, 'timing', 'rto_initial', _('Initial RTO (ms)'), 10, 60000, 1000,
			_('Retransmission timeout before the first round-trip is measured.'));
		o.validate = function(section_id, value) {
			const min = this.section.formvalue(section_id, 'rto_min') || '40';
			const max = this.section.formvalue(section_id, 'rto_max') || '1000';
			if (value !== '' && (+value < +min || +value > +max))
				return _('Must be between the minimum and the maximum RTO');
			return true;
		};
		o = intOption(s, 'timing', 'rto_min', _('Minimum RTO (ms)'), 10, 60000, 40,
			_('Lower bound of the retransmission timeout: lower means faster failover. The SACK delay follows it (a quarter of it).'));
		o.validate = function(section_id, value) {
			const max = this.section.formvalue(section_id, 'rto_max') || '1000';
			if (value !== '' && +value > +max)
				return _('Must not be greater than the maximum RTO');
			return true;
		};
		o = intOption(s, 'timing', 'rto_max', _('Maximum RTO (ms)'), 10, 60000, 1000,
			_('Upper bound of the retransmission timeout.'));
		o = intOption(s, 'timing', 'hold_down', _('Failback hold-down (s)'), 0, 86400, 30,
			_('How long the preferred connection must stay healthy before traffic returns to it (prevents flip-flopping).'));

		o = intOption(s, 'timing', 'standby_after', _('Switch to the standby endpoint after (s)'), 1, 3600, 5,
			_('How long the endpoint in use must stay unreachable on every uplink before the gateway associates with the other one (a restarting endpoint back sooner keeps its homes).'));
		o.depends('role', 'gateway');
		o = intOption(s, 'timing', 'standby_hold_down', _('Standby hold-down (s)'), 0, 86400, 30,
			_('How long the primary endpoint must keep answering, while the standby is in use, before the gateway returns to it.'));
		o.depends('role', 'gateway');

		o = intOption(s, 'advanced', 'flow_idle', _('Flow idle timeout (s)'), 5, 86400, 120);
		o = intOption(s, 'advanced', 'max_flows', _('Maximum flows'), 1, 65535, 1024);
		o = intOption(s, 'advanced', 'queue', _('Queue length (datagrams)'), 1, 65536, 256);
		o = intOption(s, 'advanced', 'max_datagram', _('Largest datagram (bytes)'), 64, 65507, 65507);
		o = intOption(s, 'advanced', 'udp_port', _('SCTP-over-UDP local port'), 1, 65535, 9899,
			_('Used when an uplink has UDP encapsulation on (RFC 6951).'));
		o = s.taboption('advanced', form.Flag, 'require_auth', _('Require SCTP-AUTH'),
			_('Refuse a peer that does not authenticate its data with SCTP-AUTH (keyed per association at admission). Turn off only for an older haig on the other end.'));
		o.default = '1';
		o.rmempty = false;

		o = s.taboption('advanced', form.Value, 'api_listen', _('API and panel address'),
			_('host:port of the JSON API and status panel; "off" disables them.'));
		o.datatype = 'or(hostport,ipaddrport(1),"off")';
		o.placeholder = '127.0.0.1:8990';

		o = s.taboption('advanced', form.Value, 'api_token', _('API token'),
			_('Required by the API when it listens on a non-loopback address.'));
		o.password = true;

		o = s.taboption('advanced', form.ListValue, 'log_level', _('Log level'));
		o.value('debug', _('Debug'));
		o.value('info', _('Info'));
		o.value('warning', _('Warning'));
		o.value('error', _('Error'));
		o.default = 'info';

		/* --- config uplink '<name>' -------------------------------------- */
		s = m.section(form.GridSection, 'uplink', _('Uplinks'),
			_('One internet connection each. The healthy uplink with the lowest metric carries the traffic.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;
		s.tab('general', _('General'));
		s.tab('advanced', _('Advanced'));

		o = s.taboption('general', widgets.NetworkSelect, 'interface', _('Interface'));
		o.nocreate = true;

		o = intOption(s, 'general', 'metric', _('Metric'), 1, 255, 1,
			_('Priority as in mwan3: lower is preferred.'));
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'endpoint_address', _('Endpoint address'),
			_('Address of the hospital endpoint reached over this uplink (one per uplink).'));
		o.datatype = 'ipaddr(1)';
		o.rmempty = false;

		o = s.taboption('general', form.Value, 'standby_address', _('Standby endpoint address'),
			_('Address of the standby endpoint (another server or site) over this uplink; set on every uplink or on none.'));
		o.datatype = 'ipaddr(1)';

		o = s.taboption('general', form.Flag, 'metered', _('Metered'),
			_('Pay-per-byte connection: slow heartbeats while idle, no bulk traffic unless it is the only path.'));
		o.default = '0';

		o = s.taboption('general', form.Flag, 'udp_encap', _('UDP encapsulation'),
			_('Carry SCTP inside UDP on this path, for NAT and carriers that drop SCTP.'));
		o.default = '0';

		o = s.taboption('advanced', widgets.DeviceSelect, 'device', _('Device'),
			_('Linux network device; empty: taken from the interface.'));
		o.noaliases = true;
		o.modalonly = true;

		o = s.taboption('advanced', form.Value, 'local_address', _('Local address'),
			_('This uplink\'s own address; empty: taken from the device.'));
		o.datatype = 'ipaddr(1)';
		o.modalonly = true;

		o = s.taboption('advanced', form.Value, 'gateway', _('Next hop'),
			_('Gateway of this uplink for the route pinning the endpoint address to it; empty: on-link.'));
		o.datatype = 'ipaddr(1)';
		o.modalonly = true;

		o = intOption(s, 'advanced', 'udp_encap_port', _('Endpoint UDP port'), 1, 65535, 9899);
		o.depends('udp_encap', '1');
		o.modalonly = true;

		o = intOption(s, 'advanced', 'hb_interval', _('Heartbeat interval (ms)'), 100, 3600000, 1000);
		o.modalonly = true;

		o = intOption(s, 'advanced', 'metered_hb_interval', _('Idle heartbeat interval when metered (ms)'), 1000, 3600000, 30000);
		o.depends('metered', '1');
		o.modalonly = true;

		o = intOption(s, 'advanced', 'path_max_retrans', _('Retransmissions before down'), 1, 20, 3);
		o.modalonly = true;

		o = intOption(s, 'advanced', 'pf_retrans', _('Retransmissions before failing'), 0, 20, 0,
			_('Potentially-failed threshold; must not exceed the retransmissions before down.'));
		o.modalonly = true;
		o.validate = function(section_id, value) {
			const max = this.section.formvalue(section_id, 'path_max_retrans') || '3';
			if (value !== '' && +value > +max)
				return _('Must not be greater than the retransmissions before down');
			return true;
		};

		/* --- config service '<name>' ------------------------------------- */
		s = m.section(form.GridSection, 'service', _('Services'),
			_('UDP services carried over the link. Both ends must use the same service names.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Value, 'listen', _('Listen on'),
			_('Gateway: host:port where local clients send datagrams.'));
		o.datatype = 'ipaddrport(1)';

		o = s.option(form.Value, 'target', _('Deliver to'),
			_('Endpoint: host:port the datagrams are delivered to.'));
		o.datatype = 'or(hostport,ipaddrport(1))';

		o = s.option(form.Value, 'ttl', _('Lifetime (ms)'),
			_('How long a datagram may wait for (re)transmission; 0: fully reliable.'));
		o.datatype = 'and(uinteger,range(0,60000))';
		o.placeholder = '1000';

		o = s.option(form.Flag, 'critical', _('Critical'),
			_('Also send each datagram on the best other path (medical alarms).'));
		o.default = '0';

		/* --- config gateway '<id>' (endpoint role) ----------------------- */
		s = m.section(form.GridSection, 'gateway', _('Admitted gateways'),
			_('Endpoint role: the homes this endpoint accepts. The section name is the gateway ID.'));
		s.addremove = true;
		s.anonymous = false;
		s.nodescriptions = true;

		o = s.option(form.Flag, 'enabled', _('Enabled'));
		o.default = '1';
		o.rmempty = false;

		o = s.option(form.Value, 'key', _('Shared key'));
		o.password = true;
		o.datatype = 'minlength(16)';

		return m.render();
	}
});
