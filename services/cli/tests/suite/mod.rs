mod audit;
mod scan;
