// Every workflow the worker registers.
export * from './smoke';
export * from './fill';
export * from './maintenance';
export * from './claim';
