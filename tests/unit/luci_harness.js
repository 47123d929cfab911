// Runs a LuCI JavaScript view under node with stand-ins for LuCI's runtime,
// loaded the way luci.js loads views: the file's body becomes a function whose
// parameters are the required classes, and its return value is the view.
//
//   node luci_harness.js VIEW.js CASE.json   -> JSON report on stdout
//
// CASE: { status: <ubus haig status reply> | null, events: <events reply> | null,
//         networks: {iface: proto}, drop_summary: bool }

'use strict';
const fs = require('fs');

const [ viewPath, casePath ] = process.argv.slice(2);
const src = fs.readFileSync(viewPath, 'utf8');
const kase = JSON.parse(fs.readFileSync(casePath, 'utf8'));

const translated = [];
const calls = [];
const polls = [];
const notifications = [];

// LuCI's String.prototype.format, reduced to the conversions views use here.
String.prototype.format = function() {
	const args = arguments;
	let i = 0;
	return this.replace(/%(?:(\d+))?(?:\.(\d+))?([sdfm%])/g, (m, width, prec, t) => {
		if (t === '%') return '%';
		const v = args[i++];
		if (v === undefined) throw new Error('format: missing argument for ' + m + ' in ' + this);
		if (t === 'd') return String(Math.floor(+v));
		if (t === 'f') return (+v).toFixed(prec ? +prec : 6);
		if (t === 'm') return (+v).toFixed(prec ? +prec : 2) + ' ';
		return String(v);
	});
};

// LuCI's dom.append() semantics, which decide what is parsed as HTML: in an
// array, strings become text nodes; a lone string (or number) is assigned to
// innerHTML. Every innerHTML assignment is recorded as an `#html` node and in
// htmlSinks, so a test can prove untrusted text never reaches one.
const htmlSinks = [];

function content(children) {
	if (children == null) return [];
	if (Array.isArray(children))
		return children.filter(c => c != null).map(c => (typeof c === 'object') ? c : String(c));
	if (typeof children === 'object') return [ children ];
	htmlSinks.push(String(children));
	return [ { tag: '#html', attrs: {}, children: [ String(children) ] } ];
}

function node(tag, attrs, children) {
	return { tag, attrs: attrs || {}, children: content(children) };
}

function E(tag, a, c) {
	if (Array.isArray(tag)) return node('#fragment', {}, a);
	if (typeof a === 'string' || typeof a === 'number' || Array.isArray(a) || (a && a.tag))
		return node(tag, {}, a);
	return node(tag, a, c);
}

function text(n) {
	if (n == null) return '';
	if (typeof n !== 'object') return String(n);
	if (Array.isArray(n)) return n.map(text).join(' ');
	const own = n.children.map(text).join(' ');
	const rows = (n.rows || []).map(r => r.map(text).join(' | ')).join('\n');
	return [own, rows].filter(Boolean).join('\n');
}

const L = {
	resolveDefault: (p, d) => Promise.resolve(p).catch(() => d),
	bind: (fn, self) => fn.bind(self)
};

const rpc = {
	declare(spec) {
		return function() {
			const args = Array.from(arguments);
			calls.push({ object: spec.object, method: spec.method, params: spec.params || [], args });
			if (spec.method === 'status')
				return kase.status ? Promise.resolve(kase.status) : Promise.reject(new Error('Object not found'));
			if (spec.method === 'events')
				return kase.events ? Promise.resolve(kase.events) : Promise.reject(new Error('Object not found'));
			if (spec.method === 'set_primary' && kase.set_primary_reply)
				return Promise.resolve(kase.set_primary_reply);
			return Promise.resolve({ ok: true });
		};
	}
};

const view = { extend: obj => obj };
const poll = { add: (fn, interval) => { polls.push({ fn, interval }); } };
const dom = { content: (el, children) => { el.children = content(children); } };
const ui = {
	createHandlerFn: (self, name) => ({ handler: name }),
	addNotification: (title, body, kind) => { notifications.push({ kind, text: text(body) }); }
};
const network = {
	getNetworks: () => Promise.resolve(Object.keys(kase.networks || {}).map(name => ({
		getName: () => name,
		getProtocol: () => kase.networks[name]
	})))
};
function _(s) { translated.push(s); return s; }
// cbi.js fills each cell with dom.content(): a string cell is HTML.
function cbi_update_table(table, rows, placeholder) {
	table.rows = (rows.length ? rows : [[ placeholder ]]).map(r => r.map(c => content(c)));
}

// The elements with a class, and all inline styles (the page must have none).
function classes(n, out) {
	if (n && typeof n === 'object') {
		if (Array.isArray(n)) { n.forEach(c => classes(c, out)); return out; }
		if (n.attrs && n.attrs['class']) out.classes.push({ cls: n.attrs['class'], state: n.attrs['data-state'] || null, text: text(n) });
		if (n.attrs && n.attrs.style) out.styles.push(n.attrs.style);
		(n.children || []).forEach(c => classes(c, out));
		(n.rows || []).forEach(r => classes(r, out));
	}
	return out;
}

const factory = new Function('L', '_', 'E', 'view', 'rpc', 'poll', 'dom', 'ui', 'network',
	'cbi_update_table', src);
const v = factory(L, _, E, view, rpc, poll, dom, ui, network, cbi_update_table);

(async () => {
	const data = await v.load();
	const page = v.render(data);
	const report = {
		headline: v.headline(kase.status),
		text: text(page),
		polls: polls.map(p => p.interval)
	};
	if (kase.status && kase.drop_summary) {
		const st = JSON.parse(JSON.stringify(kase.status));
		delete st.summary;
		report.headline_without_summary = v.headline(st);
	}
	if (polls.length) {
		await polls[0].fn();
		const container = page.children.filter(c => c.attrs && c.attrs.id === 'haig-status')[0];
		report.after_poll = text(container);
		report.events_after_poll = v.events.map(e => e.seq);
	}
	if (kase.force) {
		await v.handleForce(kase.force.uplink, kase.force.duration);
	}
	const found = classes(page, { classes: [], styles: [] });
	report.classes = found.classes;
	report.styles = found.styles;
	report.html_sinks = htmlSinks;
	report.notifications = notifications;
	report.calls = calls.map(c => ({ object: c.object, method: c.method, params: c.params, args: c.args }));
	report.translated = Array.from(new Set(translated));
	process.stdout.write(JSON.stringify(report));
})().catch(err => { console.error(err.stack || err); process.exit(1); });
