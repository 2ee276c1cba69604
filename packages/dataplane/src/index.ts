export * from './net-dial.js';
