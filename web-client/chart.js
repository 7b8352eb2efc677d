// Canvas renderer of the flight: grid, climbing multiplier curve, plane at the tip.
// Pure drawing: the app decides elapsed time and multiplier every animation frame.

import { curveAt, curveExact } from './format.js';

const COLORS = {
  grid: 'rgba(148, 178, 224, 0.09)',
  axis: 'rgba(148, 178, 224, 0.45)',
  label: 'rgba(170, 190, 225, 0.55)',
  line: '#ffb020',
  lineCrashed: '#ff4d5e',
  fillTop: 'rgba(255, 176, 32, 0.35)',
  fillBottom: 'rgba(255, 176, 32, 0.02)',
  fillCrashedTop: 'rgba(255, 77, 94, 0.28)',
  fillCrashedBottom: 'rgba(255, 77, 94, 0.02)',
  plane: '#f4f7ff',
};

export class FlightChart {
  constructor(canvas) {
    this.canvas = canvas;
    this.ctx = canvas.getContext('2d');
    this.dpr = 1;
    this.width = 0;
    this.height = 0;
    this.resize();
    new ResizeObserver(() => this.resize()).observe(canvas);
  }

  resize() {
    const rect = this.canvas.getBoundingClientRect();
    this.dpr = Math.min(window.devicePixelRatio || 1, 2);
    this.width = Math.max(1, rect.width);
    this.height = Math.max(1, rect.height);
    this.canvas.width = Math.round(this.width * this.dpr);
    this.canvas.height = Math.round(this.height * this.dpr);
  }

  /**
   * @param {object} view
   *   phase: 'betting' | 'flying' | 'crashed' | 'idle'
   *   elapsed: ms since take-off (flying / crashed)
   *   m: multiplier in hundredths to end the curve at
   *   now: performance.now() for ambient animation
   */
  draw(view) {
    const { ctx, dpr, width: w, height: h } = this;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, w, h);

    const pad = { left: 44, right: 18, top: 40, bottom: 28 };
    const plotW = Math.max(10, w - pad.left - pad.right);
    const plotH = Math.max(10, h - pad.top - pad.bottom);
    const showCurve = view.phase === 'flying' || view.phase === 'crashed';
    const elapsed = showCurve ? Math.max(0, view.elapsed) : 0;
    const m = showCurve ? Math.max(100, view.m) : 100;

    // Scales grow with the flight so the curve keeps a pleasant shape.
    const xMax = Math.max(10_000, elapsed / 0.82);
    const yMax = Math.max(200, 100 + (m - 100) / 0.78);
    const X = (t) => pad.left + (t / xMax) * plotW;
    const Y = (mult) => pad.top + plotH - ((mult - 100) / (yMax - 100)) * plotH;

    this.drawSunburst(view, w, h);
    this.drawGrid(pad, plotW, plotH, xMax, yMax, X, Y);

    if (!showCurve) return;
    const crashed = view.phase === 'crashed';

    // Curve points: sample the formula (not the ticks) so it is smooth at any zoom.
    const steps = Math.max(24, Math.min(240, Math.round(plotW / 4)));
    const points = [];
    for (let i = 0; i <= steps; i++) {
      const t = (elapsed * i) / steps;
      points.push([X(t), Y(Math.min(m, curveExact(t)))]);
    }
    const [tipX, tipY] = points[points.length - 1];

    const fill = ctx.createLinearGradient(0, tipY, 0, pad.top + plotH);
    fill.addColorStop(0, crashed ? COLORS.fillCrashedTop : COLORS.fillTop);
    fill.addColorStop(1, crashed ? COLORS.fillCrashedBottom : COLORS.fillBottom);
    ctx.beginPath();
    ctx.moveTo(points[0][0], pad.top + plotH);
    for (const [x, y] of points) ctx.lineTo(x, y);
    ctx.lineTo(tipX, pad.top + plotH);
    ctx.closePath();
    ctx.fillStyle = fill;
    ctx.fill();

    ctx.beginPath();
    points.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.lineWidth = 4;
    ctx.lineJoin = 'round';
    ctx.lineCap = 'round';
    ctx.strokeStyle = crashed ? COLORS.lineCrashed : COLORS.line;
    ctx.shadowColor = crashed ? COLORS.lineCrashed : COLORS.line;
    ctx.shadowBlur = 14;
    ctx.stroke();
    ctx.shadowBlur = 0;

    // Plane at the tip, pointing along the curve; after a crash it flies off.
    const prev = points[Math.max(0, points.length - 4)];
    let angle = Math.atan2(tipY - prev[1], tipX - prev[0]);
    if (!Number.isFinite(angle) || (tipX === prev[0] && tipY === prev[1])) angle = -0.12;
    let px = tipX;
    let py = tipY;
    let alpha = 1;
    if (crashed) {
      const since = Math.max(0, view.sinceCrash ?? 0);
      const k = Math.min(1, since / 900);
      px += k * (w * 0.6);
      py -= k * (h * 0.5);
      alpha = 1 - k;
      angle = -0.6;
    } else {
      py += Math.sin((view.now || 0) / 260) * 1.5;
    }
    if (alpha > 0.01) this.drawPlane(px, py, angle, alpha, crashed);
  }

  drawSunburst(view, w, h) {
    const { ctx } = this;
    const cx = w * 0.08;
    const cy = h * 0.95;
    const r = Math.hypot(w, h);
    const spin = view.phase === 'flying' ? (view.now || 0) / 9000 : 0;
    ctx.save();
    ctx.translate(cx, cy);
    ctx.rotate(spin);
    ctx.fillStyle = 'rgba(120, 160, 255, 0.025)';
    const rays = 18;
    for (let i = 0; i < rays; i++) {
      const a0 = (i / rays) * Math.PI * 2;
      const a1 = a0 + Math.PI / rays;
      ctx.beginPath();
      ctx.moveTo(0, 0);
      ctx.arc(0, 0, r, a0, a1);
      ctx.closePath();
      ctx.fill();
    }
    ctx.restore();
  }

  drawGrid(pad, plotW, plotH, xMax, yMax, X, Y) {
    const { ctx } = this;
    ctx.font = '11px system-ui, -apple-system, "Segoe UI", sans-serif';
    ctx.lineWidth = 1;

    // Horizontal: multiplier steps chosen to give ~4-6 lines.
    const span = (yMax - 100) / 100;
    const stepChoices = [0.2, 0.25, 0.5, 1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000];
    const yStep = stepChoices.find((s) => span / s <= 5) ?? 10000;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    for (let v = 1; v * 100 <= yMax + 1; v += yStep) {
      const y = Math.round(Y(v * 100)) + 0.5;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(pad.left, y);
      ctx.lineTo(pad.left + plotW, y);
      ctx.stroke();
      ctx.fillStyle = COLORS.label;
      const label = yStep < 1 ? v.toFixed(2).replace(/0$/, '') : String(Math.round(v));
      ctx.fillText(`${label}x`, pad.left - 8, y);
    }

    // Vertical: seconds.
    const xSpan = xMax / 1000;
    const xStep = [2, 5, 10, 15, 30, 60, 120, 300].find((s) => xSpan / s <= 6) ?? 600;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'top';
    for (let s = 0; s * 1000 <= xMax; s += xStep) {
      const x = Math.round(X(s * 1000)) + 0.5;
      ctx.strokeStyle = COLORS.grid;
      ctx.beginPath();
      ctx.moveTo(x, pad.top);
      ctx.lineTo(x, pad.top + plotH);
      ctx.stroke();
      ctx.fillStyle = COLORS.label;
      ctx.fillText(`${s}s`, x, pad.top + plotH + 8);
    }

    ctx.strokeStyle = COLORS.axis;
    ctx.beginPath();
    ctx.moveTo(pad.left + 0.5, pad.top);
    ctx.lineTo(pad.left + 0.5, pad.top + plotH + 0.5);
    ctx.lineTo(pad.left + plotW, pad.top + plotH + 0.5);
    ctx.stroke();
  }

  drawPlane(x, y, angle, alpha, crashed) {
    const { ctx } = this;
    ctx.save();
    ctx.globalAlpha = alpha;
    ctx.translate(x, y);
    ctx.rotate(angle);
    ctx.scale(1.25, 1.25);
    ctx.shadowColor = crashed ? COLORS.lineCrashed : 'rgba(255, 200, 80, 0.9)';
    ctx.shadowBlur = 12;
    ctx.fillStyle = COLORS.plane;
    // Fuselage (nose at +x).
    ctx.beginPath();
    ctx.moveTo(16, 0);
    ctx.quadraticCurveTo(12, -3.2, 2, -3.2);
    ctx.lineTo(-14, -2.2);
    ctx.lineTo(-17, -9);
    ctx.lineTo(-20, -9);
    ctx.lineTo(-18, 0.5);
    ctx.lineTo(-14, 2.6);
    ctx.lineTo(2, 3.2);
    ctx.quadraticCurveTo(12, 3.2, 16, 0);
    ctx.closePath();
    ctx.fill();
    // Wing (seen slightly from above).
    ctx.beginPath();
    ctx.moveTo(5, -1);
    ctx.lineTo(-5, -14);
    ctx.lineTo(-9, -14);
    ctx.lineTo(-4, -1);
    ctx.closePath();
    ctx.fill();
    ctx.beginPath();
    ctx.moveTo(5, 1.5);
    ctx.lineTo(-3, 9);
    ctx.lineTo(-7, 9);
    ctx.lineTo(-4, 1.5);
    ctx.closePath();
    ctx.fill();
    // Cockpit window + accent stripe.
    ctx.shadowBlur = 0;
    ctx.fillStyle = crashed ? '#ff4d5e' : '#ffb020';
    ctx.fillRect(-12, -0.6, 20, 1.4);
    ctx.fillStyle = '#1b2a4a';
    ctx.beginPath();
    ctx.ellipse(10, -1.2, 2.6, 1.3, 0, 0, Math.PI * 2);
    ctx.fill();
    ctx.restore();
  }
}

export { curveAt };
